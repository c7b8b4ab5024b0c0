from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("credits", "0012_lots")]

    operations = []
