from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("credits", "0009_ledger_forfeit")]

    operations = []
