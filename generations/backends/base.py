"""What every generation backend takes, returns and raises."""

from dataclasses import dataclass, field
from typing import Protocol

from core.errors import ApplicationError


@dataclass(frozen=True)
class BackendRequest:
    job_id: int
    operation: str
    model: str
    tier: str
    prompt: str
    parameters: dict
    is_edit: bool = False
    #: For text edits: the text being revised.
    source_text: str | None = None
    #: The user's own key; None means the platform's configured key.
    api_key: str | None = None


@dataclass(frozen=True)
class BackendOutput:
    content: bytes
    #: File extension of ``content``: "svg", "png" or "txt".
    extension: str
    #: What the run used: ``input_tokens`` / ``output_tokens`` for priced text, plus anything
    #: worth keeping (the model's own name for itself, what the prompt was read as, ...).
    usage: dict = field(default_factory=dict)


class BackendError(ApplicationError):
    """A run that did not produce a result. ``message`` is for the user, ``detail`` for staff.

    ``retryable`` (on the class) tells the task whether to try again with backoff.
    """

    code = "backend_error"
    status = 502
    retryable = False

    def __init__(self, message: str, *, detail: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or message
        self.retry_after = retry_after


class RetryableBackendError(BackendError):
    """Worth trying again later: timeouts, connection failures, 429 and 5xx answers."""

    retryable = True


class PermanentBackendError(BackendError):
    """Trying again gives the same answer: a rejected request, a bad key, a refused prompt."""


@dataclass(frozen=True)
class Offering:
    """One thing a backend offers to make: an operation with a model (and its tiers)."""

    operation: str
    model: str
    label: str
    backend: str
    tiers: tuple[str, ...] = ()
    #: Can edit an earlier result of the same kind.
    supports_edit: bool = False
    #: Works on an earlier result (enhancement).
    needs_source: bool = False
    #: Runs on the OpenAI-compatible endpoint (the platform's key or the user's own).
    remote: bool = False
    #: Offered on the job form. False: ordered from another app's page, which passes the
    #: backend what it works on in ``JobRequest.inputs`` (an uploaded picture).
    listed: bool = True


@dataclass(frozen=True)
class JobDraft:
    """A job being ordered, already checked against the catalog, for its backend to add
    and check its own parameters."""

    operation: str
    model: str
    prompt: str
    is_edit: bool = False
    #: The earlier job's parameters and prompt, for an edit or an enhancement (None: no
    #: source, or none chosen yet while the live estimate is drawn).
    source_parameters: dict | None = None
    source_prompt: str = ""
    #: What the form sent for the backend's own fields (see ``form_fields``).
    seed: int | None = None
    max_output_tokens: int | None = None
    #: Who orders the job, and what the ordering app passed for the backend to read
    #: (``JobRequest.inputs``, for example the uploaded picture to enhance).
    user_id: int | None = None
    inputs: dict = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def offerings(self, *, user_has_key: bool) -> list[Offering]:
        """What this backend can make here (``user_has_key``: the user stored a key of their own)."""

    def form_fields(self, *, operation: str) -> frozenset[str]:
        """The job form's fields of this backend's own (``seed``, ``max_output_tokens``)."""

    def prepare(self, draft: JobDraft) -> dict:
        """The job parameters this backend runs with (stored on the job, read back in
        ``run``; ``max_output_tokens`` is priced). Raises InvalidRequest naming the field."""

    def run(self, request: BackendRequest) -> BackendOutput:
        """Produce the result. Raises RetryableBackendError or PermanentBackendError."""
