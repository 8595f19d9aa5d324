"""The package's import graph has no cycles: every module of turngym/ depends one way.

The graph is read from the source (AST), not from ``sys.modules``, so it sees every import a
module can run: module-level ones, imports inside functions (lazy imports of optional or heavy
parts) and ``if TYPE_CHECKING:`` ones. All three count. A function-level import still makes
the importing module depend on the imported one; deferring it only hides a cycle until the
function runs (``rollout`` importing the multi-agent engine, which imported ``rollout``
back, was such a case). A type-only import is a dependency of the design even when it costs
nothing at run time. Imports by string (registry entry points such as
``"turngym.envs.games.sokoban:Sokoban"``) are data, not code dependencies, and are not edges.

An edge goes to the module an import names: ``from turngym.evals import stats`` is an edge to
``turngym.evals.stats``; ``from turngym.evals.stats import macro_mean`` to
``turngym.evals.stats``; ``from turngym.evals import load`` to the package ``turngym.evals``.
The implicit import of parent packages is not an edge (every module would otherwise be in a
cycle with ``turngym/__init__.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "turngym"




def _modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Every turngym module ``name`` imports, with the line of the first such import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def owner(dotted: str) -> str | None:  # the module a dotted name lives in
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [owner(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else owner(base))
        for target in targets:
            if target and target != name and target.startswith("turngym"):
                found.setdefault(target, node.lineno)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module -> {imported module: line} over every module of the package at ``root``."""
    modules = _modules(root)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    edges = [f"{a} imports {b} (line {line})" for a in component
             for b, line in sorted(graph[a].items()) if b in members]  # fmt: skip
    return "; ".join(edges)


def test_no_import_cycles():
    graph = import_graph()
    unexpected = cycles(graph)
    assert not unexpected, "import cycles (make the dependency point one way):\n" + "\n".join(
        _describe(c, graph) for c in unexpected
    )


def test_the_walker_sees_function_level_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "turngym"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from turngym.a import x\n")
    (pkg / "a.py").write_text("def f():\n    from turngym.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import f\n"
    )
    (pkg / "c.py").write_text("import turngym.sub.b\nfrom turngym import a\n")
    graph = import_graph(pkg)
    assert graph["turngym.a"] == {"turngym.sub.b": 2}
    assert graph["turngym.sub.b"] == {"turngym.a": 3}
    assert set(graph["turngym.c"]) == {"turngym.sub.b", "turngym.a"}
    assert cycles(graph) == [["turngym.a", "turngym.sub.b"]]
    # turngym/__init__ imports turngym.a, but a's parent package is not an edge back.
    assert "turngym" not in graph["turngym.a"]
