"""The package's layout: the node's wiring and the command line in folders of their own, and
no import circles — counting imports inside functions too (a lazy import that closes a circle
is still a circle: the two modules cannot be understood or tested one without the other).
Only imports under ``if TYPE_CHECKING:`` are left out; they never run."""

from __future__ import annotations

import ast
from pathlib import Path

import norrvakt

PACKAGE = Path(norrvakt.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports (a name imported from a package that is itself a
    module counts as that module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = me.split(".") if is_package else me.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
                elif base in modules:
                    found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(me)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {name: _imports(path, modules) for name, path in paths.items()}
    # a package's __init__ is not a dependency of the modules inside it unless they import it
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert found == [], "import circles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_the_node_and_the_command_line_have_folders_of_their_own() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    for name in ("runtime.py", "server.py", "lifecycle.py", "indexer.py", "pipeline.py"):
        assert name not in loose and (PACKAGE / "node" / name).is_file()
    assert not [n for n in loose if n.startswith("cli_") or n == "cli.py"], loose
    assert (PACKAGE / "cli" / "main.py").is_file() and (PACKAGE / "cli" / "__main__.py").is_file()
