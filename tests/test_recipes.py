"""Every recipe's header commands name a verb of the verb table, parse, and load their config."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lingualift.cli import build_parser
from lingualift.cli._common import config_from_args
from lingualift.cli.verbs import VERBS

RECIPES = Path(__file__).parents[1] / "recipes"
# "#   lingualift <verb> ..." or "#   cat log | lingualift <verb> ...", a trailing "# note" aside.
COMMAND = re.compile(r"^#\s+(?:[^#]*\|\s*)?lingualift (?P<words>[^#]*?)\s*(?:#.*)?$")


def header_commands(recipe: Path) -> list[list[str]]:
    """The ``lingualift`` commands of the recipe's header comment, as argv lists."""
    lines = []
    for line in recipe.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    commands = []
    for i, line in enumerate(lines):
        if match := COMMAND.match(line):
            words = match.group("words")
            for more in lines[i + 1 :]:  # a command continued with a backslash
                if not words.endswith("\\"):
                    break
                words = words[:-1] + more.lstrip("#").split(" #")[0].strip()
            commands.append(shlex.split(words))
    return commands


@pytest.mark.parametrize(
    "recipe",
    # recipes/accelerate/ holds accelerate's launch configs (tests/test_distributed.py).
    sorted(p for p in RECIPES.rglob("*.yaml") if p.parent.name != "accelerate"),
    ids=lambda p: str(p.relative_to(RECIPES)),
)
def test_recipe_header_commands_name_a_verb_parse_and_load(recipe: Path):
    commands = header_commands(recipe)
    own = str(recipe.relative_to(RECIPES.parent))
    assert any(own in argv for argv in commands), (
        f"{recipe.name}: the header must show 'lingualift <verb> --config {own}'"
    )
    verbs = {verb.name for verb in VERBS}
    for argv in commands:
        assert argv[0] in verbs, f"{recipe.name}: {argv[0]!r} is not a verb of the verb table"
        args = build_parser().parse_args(argv)
        if hasattr(args, "config_cls") or hasattr(args, "config_loader"):
            config_from_args(args)  # the recipe and the command's overrides load


def test_a_continued_command_is_read_whole(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "# Title\n#\n#   lingualift experiment --config r.yaml \\\n"
        '#       "ablations=[a, b]"\n#   cat x | lingualift monitor input=-   # note\nk: 1\n'
    )
    assert header_commands(recipe) == [
        ["experiment", "--config", "r.yaml", "ablations=[a, b]"],
        ["monitor", "input=-"],
    ]
