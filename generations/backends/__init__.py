"""Generation backends, found by name in a registry. Each prepares its own job parameters
(``prepare``) and turns a BackendRequest into a BackendOutput (``run``).

``BACKENDS`` maps a backend's name (what a catalog offering and a job's ``parameters
["backend"]`` name) to the dotted path of its class, built with no arguments; a class is
imported on first use, so a backend's client library is loaded only where it runs. Adding a
backend adds a class and one ``register`` call, not branches.
"""

from django.utils.module_loading import import_string

from .base import (
    Backend,
    BackendError,
    BackendOutput,
    BackendRequest,
    JobDraft,
    Offering,
    PermanentBackendError,
    RetryableBackendError,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendOutput",
    "BackendRequest",
    "JobDraft",
    "Offering",
    "PermanentBackendError",
    "RetryableBackendError",
    "all_backends",
    "get_backend",
    "register",
]

BACKENDS: dict[str, str] = {}


def register(name: str, path: str) -> None:
    """Make the backend class at dotted ``path`` available as ``name``."""
    BACKENDS[name] = path


def get_backend(name: str) -> Backend:
    """The backend called ``name``. Raises PermanentBackendError when there is none."""
    if name not in BACKENDS:
        raise PermanentBackendError(f"There is no backend called {name!r}.")
    return import_string(BACKENDS[name])()


def all_backends() -> list[Backend]:
    """Every registered backend, in the order registered (the order the catalog offers them)."""
    return [get_backend(name) for name in BACKENDS]


register("procedural", "generations.backends.procedural.ProceduralSvgBackend")
register("openai", "generations.backends.openai.OpenAICompatibleBackend")
