"""The buyer's billing profile: who invoices are made out to from now on."""

from django.db import transaction

from .models import BillingProfile


def billing_profile_update(
    *, user, name: str, address: str, country: str, tax_id: str
) -> BillingProfile:
    """Save the profile; invoices already issued keep the details they were issued with."""
    with transaction.atomic():
        profile, _ = BillingProfile.objects.select_for_update().get_or_create(user=user)
        profile.name = name.strip()
        profile.address = "\n".join(line.strip() for line in address.splitlines() if line.strip())
        profile.country = country.strip()
        profile.tax_id = tax_id.strip().upper().replace(" ", "")
        profile.save()
    return profile
