"""What a spend tells the apps above when it takes a balance down: the crossing hooks.

``credits`` knows nothing of payments, yet a spend that takes the balance below the user's
auto top-up threshold must start a purchase in the spend's own transaction. Upper apps
register a handler in ``AppConfig.ready``; the spend calls ``balance_crossings_notify``
inside its transaction when the balance went down, with a key naming that crossing::

    register_crossing_handler("auto_topup", handler)   # payments: topup_trigger
    balance_crossings_notify(user=user, balance_before=120, balance_after=80,
                             crossing_key=f"spend:{entry.pk}")

Each handler decides for itself whether its own threshold lies between the two balances
(``before >= threshold > after``) and must be idempotent per ``crossing_key``; an exception
rolls the spend back, so handlers only write rows and queue work for after commit.
"""

from collections.abc import Callable

_HANDLERS: dict[str, Callable[..., object]] = {}


def register_crossing_handler(name: str, handler: Callable[..., object]) -> None:
    """Register (or replace, when ``ready`` runs again) ``handler(*, user, balance_before,
    balance_after, crossing_key)``."""
    _HANDLERS[name] = handler


def balance_crossings_notify(
    *, user, balance_before: int, balance_after: int, crossing_key: str
) -> None:
    """Tell every registered handler that ``user``'s balance went from ``balance_before`` to
    ``balance_after`` (call inside the spend's transaction)."""
    if balance_after >= balance_before:
        return
    for handler in _HANDLERS.values():
        handler(
            user=user,
            balance_before=balance_before,
            balance_after=balance_after,
            crossing_key=crossing_key,
        )
