"""The audit actions: every row of the audit log names one of these.

Money movements are written by the credits services (``credits.*``), staff actions by the
back office (``staff.*``, one row per action on one object, refusals included), and the
account lifecycle by the accounts and credits apps. A new kind of audited change adds a
member here (and a migration for the field's choices).
"""

from django.db import models


class AuditAction(models.TextChoices):
    # credits: one row per movement, written in the movement's own statement or transaction
    GRANT = "credits.grant", "Credits granted"
    SPEND = "credits.spend", "Credits spent"
    REFUND = "credits.refund", "Spend refunded"
    ADJUST = "credits.adjust", "Credits adjusted"
    CLAWBACK = "credits.clawback", "Credits clawed back"
    FORFEIT = "credits.forfeit", "Credits forfeited"
    HOLD = "credits.hold", "Spending held"
    RELEASE = "credits.release", "Spending released"
    REGENERATE = "credits.regenerate", "Credits regenerated"
    EXPIRE = "credits.expire", "Credits expired"
    VOID = "credits.void", "Bonus credits voided"
    CONTROLS = "credits.controls", "Spending controls changed"
    # accounts
    ACCOUNT_DELETE = "accounts.delete", "Account deleted"
    # API keys (api), each in the transaction of the change it records
    API_KEY_CREATE = "api.key_create", "API key created"
    API_KEY_ROTATE = "api.key_rotate", "API key rotated"
    API_KEY_REVOKE = "api.key_revoke", "API key revoked"
    # staff actions (backoffice), each in the transaction of the change it records
    STAFF_CREDITS_ADJUST = "staff.credits_adjust", "Staff: adjust credits"
    STAFF_ADJUSTMENT_REQUEST = "staff.adjustment_request", "Staff: request a large adjustment"
    STAFF_ADJUSTMENT_APPROVE = "staff.adjustment_approve", "Staff: approve an adjustment"
    STAFF_ADJUSTMENT_REJECT = "staff.adjustment_reject", "Staff: reject an adjustment"
    STAFF_JOB_REFUND = "staff.job_refund", "Staff: refund a job"
    STAFF_JOB_RETRY = "staff.job_retry", "Staff: retry a job"
    STAFF_ORDER_REFUND = "staff.order_refund", "Staff: refund an order"
    STAFF_PERIOD_REFUND = "staff.period_refund", "Staff: refund a subscription period"
    STAFF_SUBSCRIPTION_CANCEL = "staff.subscription_cancel", "Staff: cancel a subscription"
    STAFF_WEBHOOK_REPLAY = "staff.webhook_replay", "Staff: replay a webhook event"
    STAFF_ACCOUNT_EXPORT = "staff.account_export", "Staff: export an account's data"
    STAFF_ACCOUNT_DELETE = "staff.account_delete", "Staff: delete an account"
    STAFF_VOUCHER_CREATE = "staff.voucher_create", "Staff: create a voucher"
    STAFF_VOUCHER_EDIT = "staff.voucher_edit", "Staff: edit a voucher"
    STAFF_VOUCHER_DEACTIVATE = "staff.voucher_deactivate", "Staff: deactivate a voucher"
    STAFF_VOUCHER_GENERATE = "staff.voucher_generate", "Staff: generate voucher codes"
    STAFF_VOUCHER_EXPORT = "staff.voucher_export", "Staff: download voucher codes"
    STAFF_API_KEY_REVOKE = "staff.api_key_revoke", "Staff: revoke an API key"

    @classmethod
    def staff(cls, name: str) -> "AuditAction":
        """The staff action named ``name`` (``job_refund`` -> ``staff.job_refund``)."""
        return cls(f"staff.{name}")
