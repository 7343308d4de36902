"""Property-based tests: the ``key=value`` parser and the record readers never surprise."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lingualift.config import load_config, save_config
from lingualift.data import Record, read_records, write_records
from lingualift.errors import LingualiftError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclasses.dataclass
class Probe:
    name: str = "x"
    maybe: str | None = None
    count: int = 1
    ratio: float = 0.5
    flag: bool = False
    items: list[str] = dataclasses.field(default_factory=list)


text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@FAST
@given(text)
def test_a_text_field_keeps_exactly_what_was_typed(value):
    assert load_config(Probe, None, [f"name={value}"]).name == value


@FAST
@given(text)
def test_an_optional_text_field_is_none_only_for_the_null_words(value):
    got = load_config(Probe, None, [f"maybe={value}"]).maybe
    if value.strip().lower() in ("", "null", "none", "~"):
        assert got is None
    else:
        assert got == value


@FAST
@given(st.integers(-(10**12), 10**12))
def test_whole_numbers_parse_and_fractions_are_refused(number):
    assert load_config(Probe, None, [f"count={number}"]).count == number
    with pytest.raises(LingualiftError, match="whole number"):
        load_config(Probe, None, [f"count={number}.5"])


# What a parsed value of each typed field must be.
OF_THE_FIELDS_TYPE = {
    "count": lambda v: type(v) is int,
    "ratio": lambda v: type(v) is float,
    "flag": lambda v: type(v) is bool,
    "items": lambda v: type(v) is list and all(type(x) is str for x in v),
}


@FAST
@given(text)
@example("~").via("a null word, which only an optional key may take")
@example("[null]").via("a null inside a list of text")
@example("1e3").via("a number in exponent notation")
def test_any_text_for_a_typed_field_is_a_value_or_one_clear_error(tmp_path_factory, value):
    recipe = tmp_path_factory.mktemp("recipe") / "probe.yaml"
    for key, is_of_type in OF_THE_FIELDS_TYPE.items():
        try:
            config = load_config(Probe, None, [f"{key}={value}"])
        except LingualiftError as exc:
            assert key in str(exc) and "\n" not in str(exc)
            continue
        parsed = getattr(config, key)
        assert is_of_type(parsed), f"{key}={value!r} gave {parsed!r}"
        save_config(config, recipe)  # what a run records reads back as the same value
        assert getattr(load_config(Probe, recipe), key) == parsed


@FAST
@given(st.lists(st.from_regex(r"[a-z]{1,5}", fullmatch=True), max_size=5))
def test_lists_read_the_same_in_brackets_or_with_commas(words):
    bracketed = load_config(Probe, None, [f"items=[{','.join(words)}]"]).items
    assert bracketed == words
    if words:
        assert load_config(Probe, None, [f"items={','.join(words)}"]).items == words


record_text = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=60
).filter(lambda t: t.strip())


@FAST
@given(
    st.lists(
        st.tuples(record_text, st.sampled_from(["sw", "fr", "hi", None])), min_size=1, max_size=8
    ),
    st.sampled_from(["jsonl", "csv", "tsv", "parquet"]),
)
def test_records_survive_a_round_trip_through_every_format(tmp_path_factory, rows, fmt):
    records = [Record(id=f"r{i}", text=t, lang=lang) for i, (t, lang) in enumerate(rows)]
    path = tmp_path_factory.mktemp("rt") / f"data.{fmt}"
    write_records(records, path)
    back = read_records(path)
    assert [(r.id, r.text, r.lang) for r in back] == [(r.id, r.text, r.lang) for r in records]


@FAST
@given(st.binary(max_size=200), st.sampled_from(["jsonl", "csv", "tsv"]))
def test_arbitrary_bytes_are_records_or_one_clear_error(tmp_path_factory, data, fmt):
    path = tmp_path_factory.mktemp("bytes") / f"data.{fmt}"
    path.write_bytes(data)
    try:
        read_records(path)
    except LingualiftError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
