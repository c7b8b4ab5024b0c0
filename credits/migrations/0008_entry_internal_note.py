from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("credits", "0007_trial_claims")]

    operations = []
