"""Demo data for a first look: a staff user, a verified customer, and each app's own demo data.

Idempotent: running it again changes nothing but the two demo passwords, which it resets so
the logins it prints always work. Apps add their demo data in ``<app>/demo.py`` with a
function ``seed(*, stdout)``; this command finds them through the app registry, so accounts
imports no other app.
"""

import importlib
import importlib.util
from pathlib import Path

from allauth.account.models import EmailAddress
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User

STAFF_EMAIL = "staff@example.com"
DEMO_EMAIL = "demo@example.com"
#: Published in the README and printed by the command: demo machines only.
DEMO_PASSWORD = "credits-demo-pass"


def project_apps() -> list:
    """Installed apps that live in this repository (not installed packages), in order."""
    base = Path(settings.BASE_DIR).resolve()
    found = []
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(base) and "site-packages" not in path.parts:
            found.append(config)
    return found


def demo_seeders() -> list[tuple[str, object]]:
    """``(app label, seed function)`` for every project app that has a ``demo`` module."""
    seeders = []
    for config in project_apps():
        module_name = f"{config.name}.demo"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        seed = getattr(module, "seed", None)
        if not callable(seed):
            raise CommandError(f"{module_name} has no seed(*, stdout) function")
        seeders.append((config.label, seed))
    return seeders


def ensure_user(*, email: str, name: str, staff: bool) -> tuple[User, bool]:
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        created = user is None
        if created:
            manager = User.objects.create_superuser if staff else User.objects.create_user
            extra = {"status": User.Status.ACTIVE} if staff else {}
            user = manager(email, DEMO_PASSWORD, name=name, **extra)
        else:
            user.set_password(DEMO_PASSWORD)
            user.is_active = True
            user.save(update_fields=["password", "is_active", "updated_at"])
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
    return user, created


class Command(BaseCommand):
    help = "Create demo users (staff and customer) and each app's demo data. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Run even with DEBUG off. The demo passwords are public: never on a real site.",
        )

    def handle(self, *args, allow_production: bool = False, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError(
                "seed_demo creates accounts with published passwords and refuses to run with "
                "DEBUG off. Pass --allow-production only on a throw-away demo deployment."
            )
        staff, staff_created = ensure_user(email=STAFF_EMAIL, name="Staff Demo", staff=True)
        demo, demo_created = ensure_user(email=DEMO_EMAIL, name="Demo Customer", staff=False)
        for user, created in ((staff, staff_created), (demo, demo_created)):
            self.stdout.write(f"{'created' if created else 'exists '} {user.email}")

        for label, seed in demo_seeders():
            self.stdout.write(f"seeding {label} demo data")
            seed(stdout=self.stdout)

        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Demo logins (password for both: {DEMO_PASSWORD})"))
        self.stdout.write(f"  staff (admin at /admin/): {STAFF_EMAIL} / {DEMO_PASSWORD}")
        self.stdout.write(f"  customer:                 {DEMO_EMAIL} / {DEMO_PASSWORD}")
