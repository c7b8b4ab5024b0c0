from django.db import migrations, models

import core.audit


class Migration(migrations.Migration):
    dependencies = [("credits", "0010_entry_reference")]

    operations = [
        migrations.AlterField(
            model_name="auditlog",
            name="action",
            field=models.CharField(choices=core.audit.AuditAction.choices, max_length=64),
        ),
    ]
