"""The package's layering, read from the source with ast (every import, at any depth).

- jobs are leaves: no ``lingualift.jobs`` module imports another job (a job package such
  as ``jobs/experiments/`` may import its own modules);
- nothing below the jobs (ground, components, ``workflows``) imports ``lingualift.jobs``;
- no import cycle in ``src/lingualift``, counting function-level imports too (imports under
  ``if TYPE_CHECKING:`` run never and are left out of the cycle check only);
- no private (``_name``) name is imported from another module;
- the ECDA loop uses the monitor through its public methods only.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lingualift"


# Known violations that other branches are fixing; the lead removes each at merge.
def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                found |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return found


def owning_module(name: str) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def imports_of(module: str) -> list[tuple[str, str | None, bool]]:
    """``(imported module, imported name or None, only for type checking)`` of every import."""
    path = MODULES[module]
    tree = ast.parse(path.read_text("utf-8"))
    typing_only = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, None, id(node) in typing_only))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                target = full if full in MODULES else base
                found.append(
                    (target, None if target == full else alias.name, id(node) in typing_only)
                )
    return [(t, n, tc) for t, n, tc in found if t == "lingualift" or t.startswith("lingualift.")]


def job_unit(module: str) -> str:
    """``lingualift.jobs.<name>``: a job module, or a job package with its modules."""
    return ".".join(module.split(".")[:3])


def graph(include_type_checking: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {
            owning_module(target)
            for target, _, typing_only in imports_of(module)
            if include_type_checking or not typing_only
        }
        edges[module] = {t for t in targets if t and t != module}
    return edges


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm; components of more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_walker_sees_function_level_imports():
    """A sanity check of the walker itself: a lazy import inside a function is an edge."""
    targets = {t for t, _, _ in imports_of("lingualift.jobs.train")}
    assert "lingualift.models" in targets  # imported inside the stage function
    assert "lingualift.workflows.training" in targets


def test_jobs_are_leaves():
    offenders = [
        f"{module} imports {target}"
        for module in MODULES
        if module.startswith("lingualift.jobs.")
        for target, _, _ in imports_of(module)
        if target.startswith("lingualift.jobs.") and job_unit(target) != job_unit(module)
    ]
    assert not offenders, "a job imports another job:\n" + "\n".join(offenders)


def test_nothing_below_the_jobs_imports_them():
    above = ("lingualift.jobs", "lingualift.cli")
    offenders = [
        f"{module} imports {target}"
        for module in MODULES
        if not module.startswith(above)
        for target, _, _ in imports_of(module)
        if target == "lingualift.jobs" or target.startswith("lingualift.jobs.")
    ]
    assert not offenders, "an upward import:\n" + "\n".join(offenders)


def test_no_import_cycle():
    cycles = strongly_connected(graph(False))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in cycles)


def test_no_private_name_is_imported_across_modules():
    offenders = [
        (module, target, name)
        for module in MODULES
        for target, name, _ in imports_of(module)
        if name and name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not offenders, "\n".join(f"{m} imports {n} from {t}" for m, t, n in offenders)


def test_the_ecda_loop_uses_only_the_monitors_public_methods():
    """The loop and the monitor share no private attribute: the loop touches no ``_name`` of
    another object, and every attribute it reads on the monitor is public API of LogMonitor."""
    from lingualift.continual.log_monitor import LogMonitor

    tree = ast.parse((PACKAGE / "continual" / "loop.py").read_text("utf-8"))
    foreign_private = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "loop"))
    ]
    assert not foreign_private, foreign_private
    on_monitor = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "monitor"
    }
    assert on_monitor, "the walker found no use of the monitor"
    public = {name for name in dir(LogMonitor) if not name.startswith("_")}
    assert on_monitor <= public, on_monitor - public
    # ... and the monitor knows nothing of the loop.
    monitor_tree = ast.parse((PACKAGE / "continual" / "log_monitor.py").read_text("utf-8"))
    names = {n.id for n in ast.walk(monitor_tree) if isinstance(n, ast.Name)}
    assert not {"EcdaLoop", "PlannedUpdate", "loop"} & names
    assert all(
        "loop" not in target for target, _, _ in imports_of("lingualift.continual.log_monitor")
    )
