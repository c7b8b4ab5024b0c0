from .selectors import CreditSummary, credit_summary
from .services import balance_refresh_for_request


def credit_summary_for_request(request) -> CreditSummary:
    """The signed-in user's ``CreditSummary``, read once per request (the header and the credits
    page share it) after the balance refresh."""
    cached = getattr(request, "_credits_summary", None)
    if cached is None:
        balance = balance_refresh_for_request(request=request).balance
        cached = credit_summary(user_id=request.user.pk, balance=balance)
        request._credits_summary = cached
    return cached


def balance(request) -> dict:
    """The signed-in user's balance for the header (with any free-tier regeneration due), and its
    summary (paid and promotional parts, soonest expiry), read only if a template uses it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    snapshot = balance_refresh_for_request(request=request)
    return {
        "credit_balance": snapshot.balance,
        # The low-balance banner: the threshold while the balance is below it, else None.
        "credit_low_balance": snapshot.low_balance_threshold if snapshot.below_threshold else None,
        # A callable: the template calls it on first use; htmx fragments without the header
        # do not pay for the read.
        "credit_summary": lambda: credit_summary_for_request(request),
    }
