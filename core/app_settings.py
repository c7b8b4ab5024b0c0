"""The one way an app reads its settings: typed defaults, read when used, checked at start-up.

Each app declares its settings once, in its ``app_settings.py``::

    class CreditsSettings(AppSettings):
        TRIAL_GRANT = Setting("CREDITS_TRIAL_GRANT", 10, int, minimum=0, whole=True,
                              check_id="credits.E001", meaning="credits granted on sign-up")

    app_settings = CreditsSettings()

``app_settings.TRIAL_GRANT`` reads ``settings.CREDITS_TRIAL_GRANT`` at access time (so
``override_settings`` and a changed environment are seen), falls back to the environment
variable of the same name when ``env=True`` (how deployments configure providers and
workers), else to the default, and converts it to the declared type. The lookup and the
conversion are remembered until a setting changes (Django's ``setting_changed``, which
``override_settings`` and pytest-django's ``settings`` send) or, for an environment value,
until the variable does: a hot path reads its settings at the cost of a dict lookup. (A
value assigned straight to ``django.conf.settings``, not through ``override_settings``, sends
no signal: a setting read before it keeps its old value.)
``app_settings.check()``
returns a system-check ``Error`` for every value that cannot be converted or is out of its
bounds; each app's ``checks.py`` registers it (with any rule that spans several settings).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

_MISSING = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"not a yes/no value: {value!r}")
    return bool(value)


def to_timedelta(value: Any) -> timedelta:
    """A timedelta, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a duration: {value!r}")
    return timedelta(seconds=float(value))


def to_tuple(value: Any) -> tuple[str, ...]:
    """A list or tuple, or a comma-separated string."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


_CASTS: dict[Any, Callable[[Any], Any]] = {bool: to_bool, timedelta: to_timedelta, tuple: to_tuple}
_TYPE_WORDS = {
    int: "a whole number",
    float: "a number",
    str: "a string",
    bool: "True or False",
    timedelta: "a timedelta (or a number of seconds)",
    tuple: "a list",
}


#: Django settings as looked up: name -> (version, value or ``_MISSING``).
_looked_up: dict[str, tuple] = {}
#: Bumped on every ``setting_changed``: whatever was remembered before it is stale.
_generation = 0


def _forget(**kwargs) -> None:
    global _generation
    _generation += 1


setting_changed.connect(_forget, dispatch_uid="core.app_settings")


#: The attributes of ``django.conf.settings`` itself (read without its proxy's own lookup).
_lazy_settings = object.__getattribute__(settings, "__dict__")


def _version() -> tuple:
    """What a remembered read is valid for: no ``setting_changed`` since, and the same object
    holding the settings (``override_settings`` swaps it in and out, also when it deletes a
    setting, which sends no signal). During a swap the holder is missing for a moment: what
    is read then is remembered for no holder, and the next read looks it up again."""
    return _generation, _lazy_settings.get("_wrapped")


def _django_setting(name: str, version: tuple) -> Any:
    remembered = _looked_up.get(name)
    if remembered is not None and remembered[0] == version[0] and remembered[1] is version[1]:
        return remembered[2]
    value = getattr(settings, name, _MISSING)
    _looked_up[name] = (*version, value)
    return value


def read(name: str, default: Any = None, *, env: bool = False, version: tuple | None = None) -> Any:
    """The raw value of one setting: Django's, else (``env``) the environment's, else ``default``.

    With ``env``, a Django setting that is None or empty counts as missing.
    """
    value = _django_setting(name, version or _version())
    if env and (value is _MISSING or value is None or value == ""):
        value = os.environ.get(name, _MISSING)
        if value == "":
            value = _MISSING
    return default if value is _MISSING else value


class Setting:
    """One setting of an app: its Django name, typed default and bounds.

    ``type``: int, float, str, bool, timedelta or tuple (the value is converted on access).
    ``default``: the value when nothing is set; a callable is called (for defaults that
    depend on other settings, such as ``DEBUG``). ``whole``: the value must already be a
    whole number (a bool or a string is refused), for a timedelta whole seconds, for a bool
    True or False themselves.
    ``minimum`` / ``maximum``: inclusive bounds (a timedelta for durations); ``above``: an
    exclusive lower bound. ``check_id``: the id of the check that reports a bad value.
    """

    def __init__(
        self,
        name: str,
        default: Any,
        type: Any = str,  # noqa: A002 - reads as the declaration it is
        *,
        env: bool = False,
        whole: bool = False,
        minimum: Any = None,
        maximum: Any = None,
        above: Any = None,
        check_id: str = "",
        meaning: str = "",
    ):
        self.name, self._default, self.type = name, default, type
        self.env, self.whole = env, whole
        self.minimum, self.maximum, self.above = minimum, maximum, above
        self.check_id, self.meaning = check_id, meaning
        #: (settings version (see ``_version``), raw value, value) of the last access.
        self._remembered: tuple | None = None

    def __set_name__(self, owner, attr: str) -> None:
        self.attr = attr

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        remembered = self._remembered
        if (
            not self.env  # only a settings change changes it: no need to look it up again
            and remembered is not None
            and remembered[0] == _generation
            and remembered[1] is _lazy_settings.get("_wrapped")
        ):
            return remembered[3]
        return self.value()

    @property
    def default(self) -> Any:
        return self._default() if callable(self._default) else self._default

    def raw(self, version: tuple | None = None) -> Any:
        """The configured value as given (unconverted), or a private marker when none is."""
        return read(self.name, _MISSING, env=self.env, version=version)

    def given(self) -> Any:
        """The configured value as given (unconverted), else the default."""
        raw = self.raw()
        return self.default if raw is _MISSING else raw

    def convert(self, value: Any) -> Any:
        if value is None or self.type is None:
            return value
        cast = _CASTS.get(self.type, self.type)
        try:
            return cast(value)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"{self.name} must be {_TYPE_WORDS.get(self.type, self.type.__name__)}, got {value!r}"
            ) from exc

    def value(self) -> Any:
        # Taken before the lookup: a change during it leaves what is remembered stale.
        version = _version()
        raw = self.raw(version)
        remembered = self._remembered
        if (
            remembered is not None
            and remembered[0] == version[0]
            and remembered[1] is version[1]
            # the same object, or the same text (the environment gives a new str each time)
            and (remembered[2] is raw or (type(raw) is str and remembered[2] == raw))
        ):
            return remembered[3]
        value = self.default if raw is _MISSING else self.convert(raw)
        self._remembered = (*version, raw, value)
        return value

    def problem(self) -> str:
        """What is wrong with the configured value ("" when nothing is)."""
        raw = self.raw()
        if raw is _MISSING:
            return ""
        if self.whole and not self._is_whole(raw):
            return self._rule()
        try:
            value = self.convert(raw)
        except ImproperlyConfigured:
            return self._rule()
        if value is None:
            return ""
        if (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
        ):
            return self._rule()
        return ""

    def _is_whole(self, raw: Any) -> bool:
        if self.type is bool:
            return isinstance(raw, bool)
        if self.type is timedelta:
            if isinstance(raw, timedelta):
                seconds = raw.total_seconds()
            elif isinstance(raw, int | float) and not isinstance(raw, bool):
                seconds = float(raw)
            else:
                return False
            return seconds == int(seconds)
        return isinstance(raw, int) and not isinstance(raw, bool)

    def _rule(self) -> str:
        words = _TYPE_WORDS.get(self.type, getattr(self.type, "__name__", "a value"))
        if self.whole and self.type is timedelta:
            words += " of whole seconds"
        bounds = []
        if self.above is not None:
            bounds.append(f"above {self.above}")
        if self.minimum is not None:
            bounds.append(f">= {self.minimum}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum}")
        meaning = f" ({self.meaning})" if self.meaning else ""
        return (
            f"{self.name} must be {words}{' ' + ' and '.join(bounds) if bounds else ''}{meaning}; "
            f"it is {self.raw()!r}."
        )

    def check(self) -> list[Error]:
        problem = self.problem()
        if not problem or not self.check_id:
            return []
        return [Error(problem, hint=f"The default is {self.default!r}.", id=self.check_id)]


class AppSettings:
    """An app's settings: ``Setting`` attributes, read on access (remembered until a change),
    checked by ``check()``."""

    @classmethod
    def declared(cls) -> list[Setting]:
        found: dict[str, Setting] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, Setting):
                    found[value.name] = value
        return list(found.values())

    def defaults(self) -> dict[str, Any]:
        return {setting.name: setting.default for setting in self.declared()}

    def check(self) -> list[Error]:
        """One Error per setting whose value is of the wrong type or out of bounds."""
        return [error for setting in self.declared() for error in setting.check()]
