"""What caused a ledger entry, named without depending on the app it belongs to.

An entry refers to its cause (the order that bought the credits, the job that spent them)
by a pair: ``source_type``, a short stable name such as ``"payments.order"``, and
``source_id``, that object's primary key. ``credits`` is the bottom layer: it imports none of
the apps above it and holds no foreign key to their tables. Each of those apps registers
its source types here when it starts (``AppConfig.ready``), saying how to name, link and
export its objects, and reads its own entries back by the pair.

The names are stored in the ledger: once used, a name never changes (a model may be
renamed or moved; its source type stays).
"""

from dataclasses import dataclass
from functools import cached_property

from django.urls import NoReverseMatch, reverse

#: The longest source type name the ledger stores.
SOURCE_TYPE_MAX_LENGTH = 40


@dataclass(frozen=True)
class Source:
    """A reference to the object that caused a movement: ``Source("payments.order", 12)``."""

    type: str
    id: int


@dataclass(frozen=True, eq=False)
class SourceType:
    """How the ledger shows one kind of source (registered by the app that owns it)."""

    #: The stored name, ``"<app>.<thing>"``; never changes once entries use it.
    name: str
    #: What it is called in running text: ``"order"`` gives "order #12".
    label: str
    #: The model, for links to its admin change page.
    model: type
    #: The customer's CSV export column holding the id (``"order_id"``).
    export_column: str
    #: The URL name of the customer's page listing these (empty: no link).
    customer_url_name: str = ""

    def text(self, source_id: int) -> str:
        return f"{self.label} #{source_id}"

    @cached_property
    def customer_url(self) -> str:
        if not self.customer_url_name:
            return ""
        try:
            return reverse(self.customer_url_name)
        except NoReverseMatch:
            return ""


_TYPES: dict[str, SourceType] = {}


def register_source_type(
    *, name: str, label: str, model: type, export_column: str, customer_url_name: str = ""
) -> SourceType:
    """Register (or register again, identically) a source type. Called from ``AppConfig.ready``."""
    if (
        not name
        or len(name) > SOURCE_TYPE_MAX_LENGTH
        or name != name.strip().lower()
        or "." not in name
    ):
        raise ValueError(
            f"A source type is a lowercase '<app>.<thing>' of at most {SOURCE_TYPE_MAX_LENGTH} "
            f"characters, not {name!r}."
        )
    kind = SourceType(
        name=name,
        label=label,
        model=model,
        export_column=export_column,
        customer_url_name=customer_url_name,
    )
    known = _TYPES.get(name)
    if known is not None and (known.model, known.export_column) != (model, export_column):
        raise ValueError(
            f"The source type {name!r} is already registered for {known.model.__name__}."
        )
    clash = [t.name for t in _TYPES.values() if t.export_column == export_column and t.name != name]
    if clash:
        raise ValueError(
            f"The export column {export_column!r} already belongs to the source type {clash[0]!r}."
        )
    _TYPES[name] = kind
    return kind


def source_type(name: str | None) -> SourceType | None:
    return _TYPES.get(name) if name else None


def source_types() -> list[SourceType]:
    """Every registered source type, in the order of their names (a stable column order)."""
    return [_TYPES[name] for name in sorted(_TYPES)]


def export_columns() -> list[str]:
    """The customer export's columns for the sources, one per type (``job_id``, ``order_id``)."""
    return [t.export_column for t in source_types()]


def export_values(source_type_name: str | None, source_id: int | None) -> list[int | None]:
    """The values of ``export_columns()`` for one entry: its id under its type, None elsewhere."""
    return [source_id if t.name == source_type_name else None for t in source_types()]


def require_registered(source: Source | None) -> Source | None:
    """``source`` itself; raises ValueError when its type is unknown or its id is not an id."""
    if source is None:
        return None
    if source.type not in _TYPES:
        raise ValueError(
            f"{source.type!r} is not a registered source type; known: {sorted(_TYPES)}."
        )
    if not isinstance(source.id, int) or isinstance(source.id, bool) or source.id <= 0:
        raise ValueError(f"A source id is a positive integer, not {source.id!r}.")
    return source


@dataclass(frozen=True)
class SourceLink:
    """An entry's source as the customer's history shows it: "order #12", linked."""

    text: str
    url: str


def customer_link(source_type_name: str | None, source_id: int | None) -> SourceLink | None:
    kind = source_type(source_type_name)
    if kind is None or source_id is None:
        return None
    return SourceLink(text=kind.text(source_id), url=kind.customer_url)


def admin_link_parts(
    source_type_name: str | None, source_id: int | None
) -> tuple[type, str] | None:
    """(model, text) for a link to the source's admin page, or None when there is no source."""
    kind = source_type(source_type_name)
    if kind is None or source_id is None:
        return None
    return kind.model, kind.text(source_id).capitalize()
