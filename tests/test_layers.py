"""The apps' imports point one way, and no module imports itself back through others.

Layers, bottom to top: ``core`` -> ``accounts`` -> ``notices`` -> ``credits`` -> ``payments`` | ``generations``
-> ``images`` -> ``api`` -> ``backoffice``; ``config`` (settings, urls, Celery) sits on top and may import anything.
A module imports its own app and the layers below it only: ``payments`` and ``generations``
never import each other, and nothing imports ``backoffice`` but ``config`` (and the tests,
which are not checked). An upper app that needs a lower one to call it back registers a
callable there in its ``AppConfig.ready`` (``accounts.lifecycle``, ``credits.references``).

Imports inside functions count the same as those at the top of a module: a local import
hides a dependency, it does not remove it. So does naming another app's model by a string
(``apps.get_model("credits", ...)``, ``ForeignKey("payments.Order")``). The imports are read
from the source with ``ast``, so an import that never runs in the tests is checked too.
Migrations are left out: their ``dependencies`` name other apps' migrations as data.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Each app's layer: a module may import its own app and apps of a lower number.
LAYERS = {
    "core": 0,
    "accounts": 1,
    "notices": 2,
    "credits": 3,
    "payments": 4,
    "generations": 4,
    "images": 5,
    "api": 6,
    "backoffice": 7,
    "config": 8,
}

#: ``(module, imported module)`` pairs allowed against the order above, each with the reason.
#: None today; keep it that way or justify each one here.
ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    """Every project module (``app.sub.module`` -> file), migrations left out."""
    found = {}
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


#: Calls that name a model by a string (``"credits.LedgerEntry"``, or ``"credits", "LedgerEntry"``):
#: a dependency on that app's models as much as an import is.
MODEL_REFERENCES = {"get_model", "ForeignKey", "OneToOneField", "ManyToManyField"}


def _model_reference(node: ast.Call) -> str | None:
    """``app.models`` when ``node`` names a model of a project app by a string, else None."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    given = [
        *node.args[:2],
        *(keyword.value for keyword in node.keywords if keyword.arg in {"to", "app_label"}),
    ]
    strings = [
        arg.value for arg in given if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    ]
    if called not in MODEL_REFERENCES or not strings:
        return None
    app = strings[0].partition(".")[0]
    return f"{app}.models" if app in LAYERS else None


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The project modules ``name`` imports (at any depth of its code), with line numbers."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            targets = [reference] if (reference := _model_reference(node)) else []
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from package import module`` imports the module; ``from module import name`` the module.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def _app(module: str) -> str:
    return module.partition(".")[0]


def test_the_modules_are_found():
    assert {"credits.services", "backoffice.admin", "core.apps", "config.urls"} <= MODULES.keys()


def test_apps_import_only_their_own_layer_and_those_below():
    wrong = []
    for name, targets in GRAPH.items():
        for target, line in targets:
            source_app, target_app = _app(name), _app(target)
            if source_app == target_app or (name, target) in ALLOWED:
                continue
            if LAYERS[target_app] >= LAYERS[source_app]:
                wrong.append(f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "Imports against the layers:\n" + "\n".join(wrong)


def test_nothing_below_config_imports_backoffice():
    wrong = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name, targets in GRAPH.items()
        for target, line in targets
        if _app(target) == "backoffice" and _app(name) not in {"backoffice", "config"}
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert not cycles, "Modules that import each other (directly or round a circle):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )
