import dataclasses

import pytest

from lingualift.config import (
    RENAMED_KEYS,
    apply_overrides,
    bookkeeping,
    describe,
    field_docs,
    load_config,
    save_config,
    settings_of,
    to_dict,
)
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


@dataclasses.dataclass
class Shown:
    rank: int = 8
    """A setting."""
    log_every: int = bookkeeping(1)
    """How often to log."""


@dataclasses.dataclass
class Job:
    inner: Shown = dataclasses.field(default_factory=Shown)
    """Nested section with a bookkeeping key."""
    out_dir: str = bookkeeping("runs/x")
    """Output folder."""
    seeds: list[int] = bookkeeping(default_factory=lambda: [0, 1])
    """Which units run."""
    out: str | None = None
    """Output file."""
    lr: float = 1e-3
    """A setting."""


def test_settings_of_drops_bookkeeping_at_every_level():
    job = Job(out_dir="elsewhere", seeds=[3], inner=Shown(rank=2, log_every=9))
    assert settings_of(job) == {"inner": {"rank": 2}, "out": None, "lr": 1e-3}
    assert to_dict(job)["inner"]["log_every"] == 9 and to_dict(job)["seeds"] == [3]
    assert Job().seeds is not Job().seeds  # default_factory still gives each its own list
    assert "out_dir = 'runs/x'" in describe(Job) and "Output folder." in describe(Job)
    with pytest.raises(TypeError, match="dataclass instance"):
        settings_of(Job)


@pytest.mark.parametrize(
    ("old", "new"), [("output_dir", "out_dir"), ("output", "out"), ("inner.output", None)]
)
def test_old_output_spellings_are_refused_with_the_new_name(old, new):
    with pytest.raises(LingualiftError) as info:
        load_config(Job, None, [f"{old}=x"])
    message = str(info.value)
    if new is None:  # Shown has neither out nor out_dir: plainly unknown
        assert "Unknown key 'output'" in message
    else:
        assert message.startswith(f"{old} is now {new} (") and message.count(". ") == 0


def test_out_is_out_dir_where_a_verb_writes_a_folder():
    @dataclasses.dataclass
    class Folder:
        out_dir: str = "x"
        """Output folder."""

    with pytest.raises(LingualiftError, match="out is now out_dir"):
        load_config(Folder, None, ["out=y"])
    assert RENAMED_KEYS["output_dir"] == ("out_dir",)
