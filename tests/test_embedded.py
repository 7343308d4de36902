"""The embedded-model registry is ground: models.py and portable.py both read it, neither
imports the other for it (no import cycle)."""

import ast
from pathlib import Path

import pytest

import lingualift
from lingualift import embedded, models, portable
from lingualift.errors import LingualiftError

SRC = Path(lingualift.__file__).parent


def _imports(module_file: Path) -> set[str]:
    """Every lingualift module ``module_file`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(module_file.read_text("utf-8"))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("lingualift")
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lingualift"))
    return found


def test_portable_does_not_import_models_and_the_registry_imports_neither():
    assert "lingualift.models" not in _imports(SRC / "portable.py")
    assert not {"lingualift.models", "lingualift.portable"} & _imports(SRC / "embedded.py")
    assert not {"lingualift.models", "lingualift.portable"} & _imports(SRC / "placement.py")


def test_no_private_names_cross_between_models_and_portable():
    for name, other in (("portable.py", "models"), ("models.py", "portable")):
        tree = ast.parse((SRC / name).read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == f"lingualift.{other}":
                assert not [a.name for a in node.names if a.name.startswith("_")], name


def test_the_registry_names_stay_importable_from_models():
    assert models.EMBEDDED_MODELS is embedded.EMBEDDED_MODELS
    assert models.DEFAULT_MODEL == embedded.DEFAULT_MODEL == "embedded:gemma-3-270m"
    assert models.EMBEDDED_PREFIX == "embedded:"
    assert models.EmbeddedModel is embedded.EmbeddedModel


def test_unknown_embedded_names_list_what_is_accepted():
    with pytest.raises(
        LingualiftError, match="Unknown embedded model 'llama-9000'.*embedded:gemma"
    ):
        embedded.embedded_model("llama-9000")
    with pytest.raises(LingualiftError, match="Unknown embedded model"):
        portable.embedded_weights("llama-9000")
    assert embedded.embedded_name("embedded:gemma-3-270m") == "gemma-3-270m"
    assert embedded.embedded_name("google/gemma-3-270m") is None


def test_exporting_needs_the_converted_model_first():
    identity = portable.base_identity("embedded:gemma-3-270m")
    with pytest.raises(LingualiftError, match="run 'lingualift export-base'"):
        portable.write_base_files(identity, "unused")
