"""Serving and adapters are components: they never import a job or the CLI, adapters never
import serving, and no serving module imports another that imports it back (the import
statements are read from the source, function-level ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import lingualift

PACKAGE = Path(lingualift.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (``from a import b`` names ``a``
    and, when it is a module, ``a.b``)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph(subpackage: str) -> dict[str, set[str]]:
    files = sorted((PACKAGE / subpackage).rglob("*.py"))
    return {module_name(f): imports_of(f) for f in files}


def test_components_import_no_job_no_cli_and_adapters_no_serving():
    for sub in ("serving", "adapters"):
        for module, names in graph(sub).items():
            upward = sorted(n for n in names if n.startswith(("lingualift.jobs", "lingualift.cli")))
            assert not upward, f"{module} imports {upward}"
    for module, names in graph("adapters").items():
        assert not [n for n in names if n.startswith("lingualift.serving")], module


def test_no_cycle_among_serving_modules():
    modules = graph("serving")
    # The package itself is every submodule's parent, imported first by Python: not an edge.
    edges = {
        m: {n for n in names if n in modules and n != "lingualift.serving" and n != m}
        for m, names in modules.items()
    }
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path, module]))
        if module in done:
            return
        for dep in sorted(edges[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    assert edges["lingualift.serving.app"] >= {
        "lingualift.serving.api_router"
    }  # the walk sees edges
