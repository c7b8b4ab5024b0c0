"""Words for counts, the same on every generation page and message."""


def credits_text(count: int) -> str:
    """``1 credit``, ``3 credits``."""
    return f"{count} credit{'' if count == 1 else 's'}"


def seconds_text(seconds: int) -> str:
    """A short duration: ``45 s``, ``3 min``, ``2 h``."""
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"
