from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("payments", "0006_webhook_next_attempt")]

    operations = []
