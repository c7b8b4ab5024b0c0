from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("credits", "0010_entry_reference")]

    operations = []
