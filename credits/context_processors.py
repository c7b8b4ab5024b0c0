from .models import CreditBalance


def balance(request) -> dict:
    """The signed-in user's balance, for the header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    value = CreditBalance.objects.filter(user_id=user.pk).values_list("balance", flat=True).first()
    return {"credit_balance": value or 0}
