"""What can be ordered: each operation with the models (and tiers) that can run it.

The offline picture models are always there. The OpenAI-compatible models appear when the
platform has a key for the endpoint, or when the user has stored a key of their own.
"""

from dataclasses import dataclass

from .app_settings import app_settings
from .backends.procedural import ENHANCE_TIERS, MODEL as PROCEDURAL_MODEL
from .exceptions import InvalidRequest
from .models import Operation


@dataclass(frozen=True)
class Offering:
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

    @property
    def operation_label(self) -> str:
        return Operation(self.operation).label


def offerings(*, user_has_key: bool = False) -> list[Offering]:
    items = [
        Offering(Operation.IMAGE, PROCEDURAL_MODEL, "Illustrator (SVG, offline)", "procedural", supports_edit=True),
        Offering(Operation.ENHANCE, PROCEDURAL_MODEL, "Illustrator enhancement", "procedural",
                 tiers=tuple(ENHANCE_TIERS), needs_source=True),
    ]
    if app_settings.OPENAI_API_KEY or user_has_key:
        items += [
            Offering(Operation.IMAGE, app_settings.OPENAI_IMAGE_MODEL, f"{app_settings.OPENAI_IMAGE_MODEL} (picture)",
                     "openai", remote=True),
            Offering(Operation.TEXT, app_settings.OPENAI_MODEL, app_settings.OPENAI_MODEL, "openai",
                     supports_edit=True, remote=True),
        ]
    return items


def operations(*, user_has_key: bool = False) -> list[tuple[str, str]]:
    seen = {}
    for item in offerings(user_has_key=user_has_key):
        seen.setdefault(item.operation, Operation(item.operation).label)
    return list(seen.items())


def unavailable(*, user_has_key: bool = False) -> list[tuple[str, str]]:
    """The operations this site has but that cannot be ordered now, as (operation, label):
    text needs an OpenAI-compatible endpoint, through the platform's key or the user's own."""
    available = {operation for operation, _ in operations(user_has_key=user_has_key)}
    return [(operation.value, operation.label) for operation in Operation if operation.value not in available]


def find(*, operation: str, model: str, user_has_key: bool = False) -> Offering:
    available = offerings(user_has_key=user_has_key)
    if operation not in {item.operation for item in available}:
        raise InvalidRequest("Choose what to make.", field="operation")
    for item in available:
        if item.operation == operation and item.model == model:
            return item
    raise InvalidRequest("That model is not available for this kind of job.", field="model")


def default_model(*, operation: str, user_has_key: bool = False) -> str:
    for item in offerings(user_has_key=user_has_key):
        if item.operation == operation:
            return item.model
    return ""
