from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("credits", "0011_audit_actions")]

    operations = []
