from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without blocking the spends, which update lots all the time.
    atomic = False

    dependencies = [("credits", "0015_lot_has_remaining")]

    operations = [
        AddIndexConcurrently(
            model_name="creditlot",
            index=models.Index(
                fields=["grant_entry"],
                include=("user", "original", "source", "category"),
                name="credits_lot_grant_check",
            ),
        ),
    ]
