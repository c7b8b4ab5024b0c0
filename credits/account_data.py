"""The credits part of a user's data export and account deletion (see ``accounts.lifecycle``).

The balance and every ledger entry are exported (with the description the customer reads,
never staff notes). Deletion keeps them: ledger entries are financial records, and the
balance stays on the anonymised account, where nothing can spend it. The deletion's audit
row is written here, in the deletion's transaction.
"""

from accounts.lifecycle import register_account_data

from .models import AuditLog, CreditBalance
from .selectors import EXPORT_FIELDS, ledger_export_rows

DELETE_ACTION = "accounts.delete"


def export_balance(user) -> list[dict]:
    row = (
        CreditBalance.objects.filter(user_id=user.pk)
        .values("balance", "lifetime_earned", "lifetime_spent", "spend_holds")
        .first()
    )
    return [row] if row else []


def export_ledger(user):
    for values in ledger_export_rows(user=user):
        row = dict(zip(EXPORT_FIELDS, values))
        row["description"] = row.pop("customer_description", "")
        yield row


def record_deletion(*, user, actor, reason: str) -> None:
    by_self = actor is None or getattr(actor, "pk", None) == user.pk
    AuditLog.objects.create(
        user_id=user.pk,
        actor_id=None if actor is None else actor.pk,
        action=DELETE_ACTION,
        metadata={"by": "self" if by_self else "staff", "reason": reason,
                  "balance_forfeited": (export_balance(user) or [{"balance": 0}])[0]["balance"]},
    )


def register() -> None:
    register_account_data("balance", export=export_balance)
    register_account_data("ledger", export=export_ledger, erase=record_deletion)
