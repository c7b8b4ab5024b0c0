"""Template filters for money: ``{{ order.amount|money:order.currency }}`` -> $9.99."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "JPY": "¥"}
STATUS_BADGES = {
    "PENDING": "badge-warning",
    "COMPLETED": "badge-success",
    "FAILED": "badge-danger",
    "EXPIRED": "badge-neutral",
    "REFUNDED": "badge-info",
    "PARTIALLY_REFUNDED": "badge-info",
    "DISPUTED": "badge-danger",
    "PAID": "badge-success",
    "VOID": "badge-neutral",
}


@register.filter
def money(value, currency: str = "USD") -> str:
    if value in (None, ""):
        return ""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    currency = (currency or "USD").upper()
    number = f"{amount.quantize(Decimal('0.01')):,}"
    symbol = SYMBOLS.get(currency)
    if amount < 0:
        number = number.lstrip("-")
        return f"−{symbol}{number}" if symbol else f"−{number} {currency}"
    return f"{symbol}{number}" if symbol else f"{number} {currency}"


@register.filter
def per_credit(value, currency: str = "USD") -> str:
    """A price per credit with enough digits to compare packages (USD 0.187 -> 18.7¢)."""
    try:
        value = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    if (currency or "USD").upper() == "USD":
        return f"{(value * 100).quantize(Decimal('0.1'))}¢"
    return f"{value.quantize(Decimal('0.001'))} {currency.upper()}"


@register.filter
def status_badge(status: str) -> str:
    return STATUS_BADGES.get(status, "badge-neutral")
