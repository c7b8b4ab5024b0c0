from .services import balance_refresh_for_request


def balance(request) -> dict:
    """The signed-in user's balance for the header (with any free-tier regeneration due)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"credit_balance": balance_refresh_for_request(request=request).balance}
