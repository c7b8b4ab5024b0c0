"""The free trial: granted once per account and once per address, when an address is verified.

An address counts as verified whichever way it was: the confirmation link or code, a social
login whose provider vouches for it (Google's ``email_verified``), or staff marking it
verified in the admin. The rule against farming is kept by the database: a ``TrialClaim``
row is unique by the digest of the address's canonical form (case-folded, plus-tag dropped,
dots dropped for Gmail, see ``accounts.addresses``) and unique by user. The claim and the
grant are written in one transaction, so there is never one without the other, and the claim
stays when the account is deleted.
"""

import hashlib
import logging

from django.db import IntegrityError, transaction

from accounts.addresses import canonical_email

from .app_settings import app_settings
from .models import LedgerEntry, TrialClaim
from .services import credits_grant_trial

logger = logging.getLogger(__name__)


def trial_key(user_id: int) -> str:
    return f"trial:{user_id}"


def address_digest(email: str) -> str:
    """What a trial claim stores for ``email``: the SHA-256 of its canonical form."""
    return hashlib.sha256(canonical_email(email).encode("utf-8")).hexdigest()


def trial_grant_for_address(*, user, email: str) -> LedgerEntry | None:
    """Grant ``user`` the trial for the verified address ``email``, unless already given.

    Returns the trial entry (the first one again when ``user`` already had it), or None when
    trials are off (``CREDITS_TRIAL_GRANT`` 0) or the address, in any spelling that reaches
    the same mailbox, already earned a trial for another account.
    """
    existing = LedgerEntry.objects.filter(idempotency_key=trial_key(user.pk)).first()
    if existing is not None:
        return existing
    if app_settings.TRIAL_GRANT <= 0:
        return None
    digest = address_digest(email)
    with transaction.atomic():
        try:
            with transaction.atomic():
                TrialClaim.objects.create(address_digest=digest, user=user)
        except IntegrityError:
            holder = (
                TrialClaim.objects.filter(address_digest=digest)
                .values_list("user_id", flat=True)
                .first()
            )
            own = TrialClaim.objects.filter(user_id=user.pk).exists()
            if not own:
                logger.info(
                    "no trial for user %s: the address was claimed by user %s", user.pk, holder
                )
                return None
        return credits_grant_trial(user=user)
