"""What the apps above accounts hold about a user, for the data export and account deletion.

accounts imports none of them: each app registers its part in its ``AppConfig.ready``::

    register_account_data(
        "orders",
        export=lambda user: ...,          # rows (JSON-serialisable dicts) for the export
        blockers=lambda user: [...],      # reasons the account cannot be deleted right now
        erase=lambda *, user, actor, reason: ...,   # inside the deletion's transaction
    )

The account pages show what each app says about the user in a summary (the credits balance
on the profile and deletion pages), registered the same way::

    register_account_summary("credits", lambda user: {"balance": ..., ...})

Sections are exported in the order they were registered, after the profile. ``erase`` hooks
run inside the deletion's transaction, under the user's row lock: they anonymise or delete
what their app holds (outside effects such as file deletion go in ``transaction.on_commit``)
and may write their own record of the deletion.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class AccountDataSection:
    name: str
    export: Callable[..., Iterable[dict]] | None = None
    blockers: Callable[..., list[str]] | None = None
    erase: Callable[..., None] | None = None


_SECTIONS: dict[str, AccountDataSection] = {}


def register_account_data(
    name: str,
    *,
    export: Callable[..., Iterable[dict]] | None = None,
    blockers: Callable[..., list[str]] | None = None,
    erase: Callable[..., None] | None = None,
) -> None:
    """Register (or replace, when ``ready`` runs again) one app's part of a user's data."""
    _SECTIONS[name] = AccountDataSection(name=name, export=export, blockers=blockers, erase=erase)


def account_data_sections() -> list[AccountDataSection]:
    return list(_SECTIONS.values())


_SUMMARIES: dict[str, Callable[..., dict]] = {}


def register_account_summary(name: str, summary: Callable[..., dict]) -> None:
    """Register (or replace) what the account pages show of one app's part, under ``name``."""
    _SUMMARIES[name] = summary


def account_summaries(user) -> dict[str, dict]:
    """``{name: summary}`` of every registered app, for the account pages' templates."""
    return {name: summary(user) for name, summary in _SUMMARIES.items()}
