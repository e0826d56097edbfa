"""The package layout the code relies on, read from the source (module-level imports):

* adapters depend only on secret, credential, providers and errors (never the key store, the
  runtime, the database or the crypto), so who owns a key stays the caller's business;
* byok_core never imports Streamlit;
* no import cycles between the project's modules;
* no dead code: every function and method of byok_core and byok_ui is called by the product."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("byok_core", "byok_ui")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported: module level, outside ``if TYPE_CHECKING``."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def _graph() -> dict[str, set[str]]:
    paths = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    modules = {_module_name(p): p for p in paths}
    return {name: {m for m in _top_level_imports(path) if m in modules} for name, path in modules.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


GRAPH = _graph()
ADAPTERS = sorted(m for m in GRAPH if m.startswith("byok_core.adapters"))


@pytest.mark.parametrize("module", ADAPTERS)
def test_adapters_depend_only_on_secret_credential_providers_and_errors(module):
    allowed = {"byok_core", "byok_core.secret", "byok_core.credential", "byok_core.providers", "byok_core.errors",
               "byok_core.azure",  # where an Azure resource's calls go: URL rules only (it imports errors alone)
               *ADAPTERS}
    assert _reachable(GRAPH, module) <= allowed


def test_core_never_imports_streamlit():
    for path in (ROOT / "byok_core").rglob("*.py"):
        assert not any(m == "streamlit" or m.startswith("streamlit.") for m in _all_imports(path)), path


def _all_imports(path: Path) -> set[str]:
    """Imports when ``path`` is imported or any of its functions runs (a late import hides a cycle, it does
    not end it); ``if TYPE_CHECKING`` imports do not count."""
    found = _top_level_imports(path)
    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for node in (inner for function in functions for inner in ast.walk(function)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_no_import_cycles():
    paths = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
             if "migrations" not in p.parts}
    graph = {name: {m for m in _all_imports(path) if m in paths and m != name} for name, path in paths.items()}
    # a package's __init__ that imports its own modules is not a cycle; a module importing its package is
    cycles = sorted(m for m in graph if m in _reachable(graph, m) and not m.endswith("__init__"))
    assert cycles == []


def test_the_graph_is_read():  # the checks above would pass vacuously on an empty graph
    assert "byok_core.keys" in _reachable(GRAPH, "byok_core.chat")
    assert "byok_core.providers" in _reachable(GRAPH, "byok_core.adapters.openai")
    assert "byok_ui.server" in _reachable(GRAPH, "byok_ui.state")


# --- no dead code ----------------------------------------------------------------------------------

PRODUCT = ("byok_core", "byok_ui", "pages", "bench")
NOT_CALLED_BY_NAME = {
    "process_bind_param": "SQLAlchemy calls a TypeDecorator's hooks",
    "process_result_value": "SQLAlchemy calls a TypeDecorator's hooks",
    "dispatch": "Starlette calls a middleware's dispatch",
    "close_shared_clients": "a seam for tests: closes the process-wide HTTP client between them",
    "fake": "a seam for tests: byok_core.clock's fake clock, which moves time on without sleeping",
    "advance": "a seam for tests: moves byok_core.clock's fake clock on",
}


def _functions(path: Path) -> list[str]:
    """The module's functions and its classes' methods (not dunders, not those a decorator registers)."""
    found = []
    for node in ast.parse(path.read_text()).body:
        inner = node.body if isinstance(node, ast.ClassDef) else [node]
        found += [f.name for f in inner if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                  and not f.name.startswith("__") and not any(isinstance(d, ast.Call) and
                                                              ast.unparse(d.func) == "compiles"
                                                              for d in f.decorator_list)]
    return found


def _names_used(path: Path) -> set[str]:
    """Every name the module refers to: variables, attributes, imported names. A package's
    ``__init__`` handing on its own modules' names is not a use (its callers' uses count)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) + "." if path.name == "__init__.py" else None
    handed_on = {id(alias) for node in tree.body if isinstance(node, ast.ImportFrom) and package
                 and (node.level or (node.module or "").startswith(package)) for alias in node.names}
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.alias) and id(node) not in handed_on:
            used.add(node.name.rpartition(".")[2])
    return used


def test_every_function_is_called_by_the_product():
    """A function only tests call is dead code: the tests should check what the product does instead."""
    paths = [p for d in PRODUCT for p in (ROOT / d).rglob("*.py")]
    used = set().union(*map(_names_used, [*paths, ROOT / "streamlit_app.py"]))  # the migrations call the models
    defined = {f"{p.relative_to(ROOT)}:{name}": name for p in paths
               if p.parts[len(ROOT.parts)] in PACKAGES and "migrations" not in p.parts for name in _functions(p)}
    assert "byok_core/keys.py:store" in defined and "byok_ui/state.py:ctx" in defined  # sanity
    assert sorted(where for where, name in defined.items() if name not in used | set(NOT_CALLED_BY_NAME)) == []
