"""Demo data: a little credit history for the demo customer, through the real services.

``seed(stdout=...)`` is idempotent: every movement has a fixed key, so running it again
changes nothing.
"""

from django.contrib.auth import get_user_model

from .exceptions import InsufficientCredits
from .models import CreditBalance, LedgerEntry, LedgerKind
from .services import credits_grant, credits_grant_trial, credits_refund, credits_spend

DEMO_EMAIL = "demo@example.com"

_SPENDS = [
    ("poster", 6, "Poster: lighthouse at dusk"),
    ("logo", 3, "Logo sketch: fox, flat style"),
    ("banner", 8, "Banner: autumn sale"),
    ("avatar", 2, "Avatar: watercolour portrait"),
]


def seed(*, stdout) -> None:
    user = get_user_model().objects.filter(email=DEMO_EMAIL).first()
    if user is None:
        stdout.write(f"credits: no {DEMO_EMAIL} user, nothing to seed")
        return
    before = LedgerEntry.objects.filter(user=user).count()
    credits_grant_trial(user=user)
    credits_grant(
        user=user,
        amount=40,
        kind=LedgerKind.BONUS,
        idempotency_key=f"demo:{user.pk}:welcome-bonus",
        description="Welcome bonus",
    )
    spends = {}
    for name, amount, description in _SPENDS:
        try:
            spends[name] = credits_spend(
                user=user,
                amount=amount,
                idempotency_key=f"demo:{user.pk}:spend:{name}",
                description=description,
            )
        except InsufficientCredits:
            stdout.write(f"credits: skipped the demo spend {name!r}: not enough credits")
    if "banner" in spends:
        credits_refund(
            spend=spends["banner"],
            idempotency_key=f"demo:{user.pk}:refund:banner",
            amount=5,
            reason="Banner came out cheaper than estimated",
        )
    added = LedgerEntry.objects.filter(user=user).count() - before
    balance = CreditBalance.objects.get(user=user).balance
    stdout.write(f"credits: {DEMO_EMAIL} has {balance} credits ({added} new ledger entries)")
