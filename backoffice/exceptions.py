"""Errors of staff actions. The admin turns each into a message for the staff member."""

from core import errors


class BackofficeError(errors.ApplicationError):
    """A staff action that cannot be carried out. Nothing was changed."""

    code = "staff_action_refused"


class PermissionMissing(BackofficeError, errors.PermissionMissing):
    code = "permission_denied"
    status = 403


class SelfApproval(BackofficeError):
    code = "self_approval"
    status = 403

    def __init__(self):
        super().__init__(
            "A large adjustment must be approved by a different staff member than the one who asked."
        )


class NotPending(BackofficeError):
    code = "not_pending"
    status = 409

    def __init__(self, request):
        super().__init__(
            f"Adjustment request #{request.pk} is already {request.get_status_display().lower()}."
        )
