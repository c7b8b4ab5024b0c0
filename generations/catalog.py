"""What can be ordered: each operation with the models (and tiers) that can run it, as
each registered backend offers them.

The offline picture models are always there. The OpenAI-compatible models appear when the
platform has a key for the endpoint, or when the user has stored a key of their own.
"""

from .backends import Offering, all_backends
from .exceptions import InvalidRequest
from .models import Operation

__all__ = ["Offering", "default_model", "find", "offerings", "operations", "unavailable"]


def offerings(*, user_has_key: bool = False) -> list[Offering]:
    """What every registered backend offers here, in the order the backends were registered."""
    return [
        item for backend in all_backends() for item in backend.offerings(user_has_key=user_has_key)
    ]


def operations(*, user_has_key: bool = False) -> list[tuple[str, str]]:
    seen = {}
    for item in offerings(user_has_key=user_has_key):
        seen.setdefault(item.operation, Operation(item.operation).label)
    return list(seen.items())


def unavailable(*, user_has_key: bool = False) -> list[tuple[str, str]]:
    """The operations this site has but that cannot be ordered now, as (operation, label):
    text needs an OpenAI-compatible endpoint, through the platform's key or the user's own."""
    available = {operation for operation, _ in operations(user_has_key=user_has_key)}
    return [
        (operation.value, operation.label)
        for operation in Operation
        if operation.value not in available
    ]


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
        if item.operation == operation and item.listed:
            return item.model
    return ""
