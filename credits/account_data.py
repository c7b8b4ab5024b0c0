"""The credits part of a user's data export and account deletion (see ``accounts.lifecycle``).

The balance and every ledger entry are exported (with the description the customer reads,
never staff notes). Deletion keeps the entries (they are financial records) and forfeits the
remaining balance with a FORFEIT entry (key ``account:<id>:forfeit``), so the ledger no
longer says the closed account is owed credits: its balance ends at 0. A frozen balance (an
open dispute) is forfeited too; its holds stay for the dispute to release, and a clawback
afterwards records what it could not recover. The forfeiture and the deletion's audit row
are written here, in the deletion's transaction.
"""

from accounts.lifecycle import register_account_data, register_account_summary
from core.audit import AuditAction

from .models import AuditLog, CreditBalance
from .references import export_columns, export_values
from .selectors import EXPORT_FIELDS, ledger_export_rows
from .services import credits_forfeit

DELETE_ACTION = AuditAction.ACCOUNT_DELETE
#: What the customer's history (and the finance exports) say about the forfeiture.
FORFEIT_DESCRIPTION = "Balance forfeited when the account was deleted"


def export_balance(user) -> list[dict]:
    row = (
        CreditBalance.objects.filter(user_id=user.pk)
        .values("balance", "lifetime_earned", "lifetime_spent", "spend_holds")
        .first()
    )
    return [row] if row else []


def balance_summary(user) -> dict:
    """The balance the account pages show (zeros before the first movement)."""
    rows = export_balance(user)
    return (
        rows[0]
        if rows
        else {"balance": 0, "lifetime_earned": 0, "lifetime_spent": 0, "spend_holds": 0}
    )


def export_ledger(user):
    columns = export_columns()
    for values in ledger_export_rows(user=user):
        row = dict(zip(EXPORT_FIELDS, values))
        source = row.pop("source_type"), row.pop("source_id")
        reverses_id = row.pop("reverses_id")
        row.update(zip(columns, export_values(*source)))  # job_id, order_id: one per source type
        row["reverses_id"] = reverses_id
        row["description"] = row.pop("customer_description", "")
        yield row


def record_deletion(*, user, actor, reason: str) -> None:
    by_self = actor is None or getattr(actor, "pk", None) == user.pk
    forfeit = credits_forfeit(
        user=user,
        idempotency_key=forfeit_key(user_id=user.pk),
        description=FORFEIT_DESCRIPTION,
        internal_note=reason,
        created_by=actor,
    )
    AuditLog.objects.create(
        user_id=user.pk,
        actor_id=None if actor is None else actor.pk,
        action=DELETE_ACTION,
        metadata={
            "by": "self" if by_self else "staff",
            "reason": reason,
            "balance_forfeited": 0 if forfeit is None else -forfeit.amount,
        },
    )


def forfeit_key(*, user_id: int) -> str:
    return f"account:{user_id}:forfeit"


def register() -> None:
    register_account_data("balance", export=export_balance)
    register_account_data("ledger", export=export_ledger, erase=record_deletion)
    register_account_summary("credits", balance_summary)
