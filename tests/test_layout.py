"""The folder tree is the architecture: each subpackage imports only the layers below it.

docs/architecture.md draws the layers; this test keeps the code and the
drawing the same.  Imports inside functions count too (a lazy import is still
a dependency), except the package's own ``__init__`` (the public face, which
imports the warehouse on first use).
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "src" / "tensordb_core"

#: What each layer may import (besides itself).  The order of docs/architecture.md, bottom up.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "format": {"errors"},
    "query": {"errors", "format"},
    "store": {"errors", "format", "query"},
    "embedded": {"errors", "format", "query", "store"},
    "stream": {"errors", "format", "query", "store"},
    "warehouse": {"errors", "format", "query", "store", "stream"},
    "torch": {"errors", "format", "query", "store", "stream", "warehouse"},
    "loop": {"errors", "format", "query", "store", "stream", "warehouse"},
    "integrations": {"errors", "format", "query", "store", "stream", "warehouse"},
    "tensorlayer": {"errors", "format", "query", "store", "stream", "warehouse", "loop"},
    "ui": {"errors", "format", "query", "store", "stream", "warehouse", "loop"},
    "cli": {"errors", "format", "query", "store", "stream", "warehouse", "loop", "tensorlayer", "ui"},
    "testing": {"errors", "format", "query", "store", "stream", "warehouse", "embedded"},
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(CORE)
    return rel.parts[0].removesuffix(".py")


def core_imports(path: Path) -> list[tuple[str, int]]:
    """(imported tensordb_core module, line) for every import in the file, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tensordb_core"):
            if node.module == "tensordb_core":
                out += [(f"tensordb_core.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("tensordb_core.")]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            out.append((f"<relative import level {node.level}>", node.lineno))
    return out


def modules() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if p != CORE / "__init__.py")


def test_every_module_imports_only_the_layers_below_it() -> None:
    offences = []
    for path in modules():
        mine = layer_of(path)
        for module, line in core_imports(path):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 and parts[0] == "tensordb_core" else module
            if target in ("__init__", "tensordb_core"):
                target = "__init__"
            if target != mine and target not in ALLOWED[mine]:
                offences.append(f"{path.relative_to(CORE)}:{line} ({mine}) imports {module}")
    assert offences == []


def test_the_top_level_is_the_public_face_only() -> None:
    top = sorted(p.name for p in CORE.glob("*.py"))
    assert len(top) <= 8, top
    assert set(ALLOWED) - {p.removesuffix(".py") for p in top} == {
        d.name for d in CORE.iterdir() if d.is_dir() and (d / "__init__.py").exists()
    }, "every subpackage is a layer of ALLOWED (and of docs/architecture.md)"


def test_no_module_has_two_jobs_by_length() -> None:
    src = CORE.parent
    long = {str(p.relative_to(src)): n for p in src.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotations only: never imported at run time)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


def import_graph(*, lazy: bool) -> dict[str, set[str]]:
    """Module -> the tensordb_core modules it imports: top-level statements only, or with ``lazy`` every one
    (inside functions too; the package's own ``__init__``, the public face that imports on first use, aside)."""
    graph: dict[str, set[str]] = {}
    paths = [*modules(), CORE / "__init__.py", *CORE.rglob("__init__.py")]
    known = {".".join(p.relative_to(CORE.parent).with_suffix("").parts).removesuffix(".__init__") for p in paths}
    for path in paths:
        rel = path.relative_to(CORE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        tree = ast.parse(path.read_text())
        nodes = runtime_nodes(tree) if lazy and path != CORE / "__init__.py" else tree.body
        deps = set()
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tensordb_core"):
                # "from pkg import module" depends on that module (its package is only being initialised)
                submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
                deps.update(submodules or [node.module])
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("tensordb_core."))
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> str | None:
    """One import cycle as ``a -> b -> a``, or None."""
    seen: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, trail: list[str]) -> str | None:
        seen[node] = 1
        for dep in sorted(graph.get(node, ())):
            if seen.get(dep) == 1:
                return " -> ".join([*trail, node, dep])
            if dep not in seen and (found := visit(dep, [*trail, node])):
                return found
        seen[node] = 2
        return None

    for node in sorted(graph):
        if node not in seen and (found := visit(node, [])):
            return found
    return None


def test_no_import_cycles_between_modules() -> None:
    """Module-level imports: a cycle there breaks import order, whatever the layers say."""
    assert find_cycle(import_graph(lazy=False)) is None


def test_no_import_cycles_through_lazy_imports() -> None:
    """Imports inside functions too: a lazy circle (cli.main <-> cli.runs borrowing helpers, warehouse.runs <->
    warehouse.artifacts sharing a name) works only by import-order luck and means two modules share one job."""
    assert find_cycle(import_graph(lazy=True)) is None


def test_the_cycle_finder_finds_a_lazy_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == "a -> b -> c -> a"
