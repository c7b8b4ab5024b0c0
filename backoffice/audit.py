"""The staff action log: one AuditLog row per staff action on one object, done or refused.

The money services write their own audit rows for the movements they make; this row says
which staff member asked for what and why, and whether it worked, so refusals are on record
too. Actions are the ``staff.*`` members of ``core.audit.AuditAction``.

A row that records a change is written inside the change's own transaction (so either both
are kept or neither); a refusal is written after the refused change was rolled back.
"""

from core.audit import AuditAction
from credits.models import AuditLog


def staff_action_record(
    *,
    actor,
    action: AuditAction | str,
    reason: str,
    user=None,
    success: bool = True,
    error: str = "",
    details: dict | None = None,
) -> AuditLog:
    """Write one staff action row (inside the caller's transaction when there is one).

    ``action`` is an ``AuditAction`` or the name of a staff one (``job_refund``); an unknown
    name raises ValueError.
    """
    if not isinstance(action, AuditAction):
        action = AuditAction.staff(action)
    return AuditLog.objects.create(
        actor_id=getattr(actor, "pk", None),
        user_id=getattr(user, "pk", user if isinstance(user, int) else None),
        action=action,
        success=success,
        error_message=error[:2000],
        metadata={"reason": reason, **(details or {})},
    )
