"""Generation backends, chosen by name. Each turns a BackendRequest into a BackendOutput."""

from .base import (
    Backend,
    BackendError,
    BackendOutput,
    BackendRequest,
    PermanentBackendError,
    RetryableBackendError,
)

__all__ = [
    "Backend", "BackendError", "BackendOutput", "BackendRequest", "PermanentBackendError",
    "RetryableBackendError", "get_backend",
]


def get_backend(name: str) -> Backend:
    if name == "procedural":
        from .procedural import ProceduralSvgBackend

        return ProceduralSvgBackend()
    if name == "openai":
        from .openai import OpenAICompatibleBackend

        return OpenAICompatibleBackend()
    raise PermanentBackendError(f"There is no backend called {name!r}.")
