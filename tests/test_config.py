import dataclasses

import pytest

from lingualift.config import apply_overrides, describe, field_docs, load_config, save_config
from lingualift.errors import LingualiftError


@dataclasses.dataclass
class Inner:
    rank: int = 8
    """LoRA rank."""


@dataclasses.dataclass
class Outer:
    lang: str = "sw"
    """Target language."""
    lr: float = 1e-4
    """Learning rate."""
    langs: list[str] = dataclasses.field(default_factory=lambda: ["en"])
    """Languages."""
    inner: Inner = dataclasses.field(default_factory=Inner)
    """Nested section."""
    flag: bool = False
    """A switch."""


def test_field_docs_reads_the_docstring_below_each_field():
    docs = field_docs(Outer)
    assert docs["lang"] == "Target language."
    assert docs["inner"] == "Nested section."
    assert "Learning rate." in describe(Outer)


def test_recipe_and_overrides_build_nested_typed_config(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lang: bn\ninner:\n  rank: 4\n")
    config = load_config(Outer, recipe, ["inner.rank=16", "lr=3e-4", "langs=fr,de", "flag=true"])
    assert config.lang == "bn"
    assert config.inner.rank == 16
    assert config.lr == pytest.approx(3e-4)
    assert config.langs == ["fr", "de"]
    assert config.flag is True


def test_round_trip_through_yaml(tmp_path):
    config = Outer(lang="hi", inner=Inner(rank=2))
    save_config(config, tmp_path / "c.yaml")
    assert load_config(Outer, tmp_path / "c.yaml") == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["nope=1"], "Unknown key 'nope'"),
        (["inner.rank=abc"], "must be a number"),
        (["flag=maybe"], "true or false"),
        (["lr"], "key=value"),
    ],
)
def test_bad_overrides_are_one_clear_sentence(overrides, message):
    with pytest.raises(LingualiftError, match=message):
        load_config(Outer, None, overrides)


def test_invalid_yaml_names_the_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("lang: sw\n  inner: [\n")
    with pytest.raises(LingualiftError, match=r"bad.yaml line \d+"):
        load_config(Outer, recipe)


def test_apply_overrides_does_not_mutate_input():
    data = {"inner": {"rank": 1}}
    apply_overrides(data, ["inner.rank=2"])
    assert data == {"inner": {"rank": 1}}


def test_yaml_builds_no_python_objects(tmp_path):
    import yaml

    from lingualift.config import parse_yaml

    marker = tmp_path / "ran"
    text = f"x: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(yaml.constructor.ConstructorError):
        parse_yaml(text)
    assert not marker.exists()
    assert parse_yaml("lang: no\nflag: true\n") == {"lang": "no", "flag": True}
