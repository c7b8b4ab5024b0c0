from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("credits", "0006_ledger_created_at_brin")]

    operations = []
