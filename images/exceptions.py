"""Errors of the images app: each is a refusal that changed nothing."""

from core.errors import ApplicationError


class ImagesError(ApplicationError):
    code = "images_error"


class UploadRefused(ImagesError):
    """The uploaded file is not accepted: the message says why."""

    code = "upload_refused"

    def __init__(self, message: str, *, reason: str):
        super().__init__(message, extra={"reason": reason})
        self.reason = reason


class TooLarge(UploadRefused):
    status = 413


class InvalidInput(ImagesError):
    """A name, description, tier or album change that cannot be made as asked."""

    code = "invalid_input"


class ImageBusy(ImagesError):
    code = "image_busy"
    status = 409
