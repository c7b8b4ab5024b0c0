"""Name the site: allauth's emails and pages say "Credits", not "example.com"."""

from urllib.parse import urlsplit

from django.conf import settings
from django.db import migrations


def name_site(apps, schema_editor):
    Site = apps.get_model("sites", "Site")
    domain = (
        urlsplit(getattr(settings, "SITE_URL", "") or "http://127.0.0.1:8000").netloc
        or "127.0.0.1:8000"
    )
    Site.objects.update_or_create(
        pk=settings.SITE_ID, defaults={"domain": domain, "name": "Credits"}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_email_case_insensitive"),
        ("sites", "0002_alter_domain_unique"),
    ]

    operations = [migrations.RunPython(name_site, migrations.RunPython.noop)]
