"""Errors of staff actions. The admin turns each into a message for the staff member."""


class BackofficeError(Exception):
    """A staff action that cannot be carried out. Nothing was changed."""


class PermissionMissing(BackofficeError):
    pass


class SelfApproval(BackofficeError):
    def __init__(self):
        super().__init__("A large adjustment must be approved by a different staff member than the one who asked.")


class NotPending(BackofficeError):
    def __init__(self, request):
        super().__init__(f"Adjustment request #{request.pk} is already {request.get_status_display().lower()}.")
