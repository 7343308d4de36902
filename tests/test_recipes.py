"""Every recipe loads into the config class of the verb its header command runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lingualift.cli import build_parser
from lingualift.config import load_config

RECIPES = Path(__file__).parents[1] / "recipes"
COMMAND = re.compile(r"^#\s+lingualift ((?:[a-z-]+ )+)--config (recipes/\S+\.yaml)")


def config_class(words: list[str]) -> type:
    """The config class the CLI attaches to ``lingualift <words...>``."""
    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[word]
    return parser.get_default("config_cls")


@pytest.mark.parametrize(
    "recipe", sorted(RECIPES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(RECIPES))
)
def test_recipe_header_shows_its_command_and_it_loads(recipe: Path):
    header = [line for line in recipe.read_text().splitlines() if line.startswith("#")]
    commands = [m for line in header if (m := COMMAND.match(line))]
    own = [m for m in commands if m.group(2) == str(recipe.relative_to(RECIPES.parent))]
    assert own, f"{recipe.name}: the header must show 'lingualift <verb> --config {recipe}'"
    cls = config_class(own[0].group(1).split())
    assert cls is not None
    load_config(cls, recipe)
