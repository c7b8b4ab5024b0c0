from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("payments", "0007_provider_outcomes")]

    operations = []
