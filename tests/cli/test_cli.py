import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest

from lingualift.cli import build_parser, main
from lingualift.cli.verbs import VERBS, markdown_table
from lingualift.config import RENAMED_KEYS

README = Path(__file__).parents[2] / "README.md"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command that builds a config: 'train', 'shifcon train', 'adapters list', ..."""
    found = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        if parser.get_default("config_cls") is not None:
            found[prefix] = parser
        for name, sub in _subparsers(parser).items():
            walk(f"{prefix} {name}".strip(), sub)

    walk("", build_parser())
    return found


def test_the_parser_is_the_verb_table(capsys):
    assert list(_subparsers(build_parser())) == [verb.name for verb in VERBS]
    for verb in VERBS:
        with pytest.raises(SystemExit) as exit_info:
            main([verb.name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "usage: lingualift" in text
        assert verb.doc is None or (README.parent / verb.doc).is_file()


def test_readme_lists_the_verb_table():
    text = README.read_text()
    start = text.index("| verb | what it does | docs |")
    table = text[start : text.index("\n\n", start)]
    assert table == markdown_table(), "README's verb table: paste `python -m lingualift.cli.verbs`"


def test_experiment_help_shows_each_experiments_keys(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    text = capsys.readouterr().out
    for name, key in [("layer_area", "bands"), ("ecda_drift", "drift_books"),
                      ("compass_genres", "genres"), ("shifcon_vs_lora", "ablations")]:  # fmt: skip
        section = text[text.index(f"experiment={name} (also):") :]
        section = section.split("\nexperiment=")[0]
        assert f"  {key} = " in section, name


# One name per concept across verbs: these spellings are refused or never used.
SYNONYMS = {
    **{old: "out_dir/out" for old in RENAMED_KEYS if old != "out"},
    "outdir": "out_dir",
    "output_file": "out",
    "store_dir": "store",
    "store_root": "store",
    "adapter_store": "store",
    "language": "lang",
    "languages": "langs",
    "base_model": "model",
}


def test_every_verb_uses_the_same_key_for_the_same_concept():
    parsers = verb_parsers()
    assert {"train", "adapters list", "generate", "corpus", "report", "shifcon train"} <= set(
        parsers
    )
    for command, parser in parsers.items():
        cls = parser.get_default("config_cls")
        keys = {f.name for f in dataclasses.fields(cls)}
        clash = {k: SYNONYMS[k] for k in keys & set(SYNONYMS)}
        assert not clash, f"{command}: use {clash}"
        assert not {"out", "out_dir"} <= keys, f"{command}: one output, a folder or a file"
        for flag in parser.get_default("flags") or ():
            assert flag.key in keys, f"{command}: {flag.options} aliases no key"
    stores = [c for c, p in parsers.items() if "store" in {f.name for f in dataclasses.fields(
        p.get_default("config_cls"))}]  # fmt: skip
    assert {"train", "monitor", "ecda", "generate", "serve", "adapters show"} <= set(stores)


def test_flags_are_aliases_of_the_keys(tmp_path, capsys):
    store = tmp_path / "empty-store"
    store.mkdir()
    assert main(["adapters", "--store", str(store), "list", "--json"]) == 0
    by_flag = capsys.readouterr().out
    assert main(["adapters", "list", f"store={store}", "json=true"]) == 0
    assert capsys.readouterr().out == by_flag == "[]\n"
    assert main(["adapters", "list", f"store={store}"]) == 0
    assert f"no adapters in {store}" in capsys.readouterr().out
    assert main(["adapters", "promote", "sw", f"store={store}"]) == 2
    assert "promote needs version=" in capsys.readouterr().err

    for argv in (["--store", str(store), "jambo"], [f"store={store}", "jambo"]):
        assert main(["generate", *argv]) == 2  # refused before any model loads
        assert f"No adapters to route to in {store}" in capsys.readouterr().err

    flags = tmp_path / "flags.jsonl"
    keys = tmp_path / "keys.jsonl"
    assert main(["corpus", "en", "sw", "--books", "57", "--parallel", "-o", str(flags)]) == 0
    assert main(["corpus", "langs=[en,sw]", "books=57", "parallel=true", f"out={keys}"]) == 0
    assert flags.read_text() == keys.read_text() and flags.read_text()


def test_old_output_spellings_are_refused_with_a_hint(tmp_path, capsys):
    cases = [
        (["train", "data=x.jsonl", f"output_dir={tmp_path / 'r'}"], "output_dir is now out_dir"),
        (["eval", f"output={tmp_path / 'e.json'}"], "output is now out"),
        (["cloze", f"output={tmp_path / 'c.jsonl'}"], "output is now out"),
        (["export-base", f"out={tmp_path / 'b'}"], "out is now out_dir"),
        (["shifcon", "vectors", f"out={tmp_path / 'v'}"], "out is now out_dir"),
        (["experiment", "experiment=layer_area", f"output_dir={tmp_path}"], "output_dir is now"),
    ]
    for argv, hint in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert hint in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_info_lists_the_embedded_assets(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assets = {a["asset"].split(" (")[0]: a["available"] for a in report["embedded_assets"]}
    assert all(assets.values()), assets
    assert len(assets) == 3
    assert report["versions"]["torch"].startswith("2.13.0")
    assert main(["info", "json=true"]) == 0
    assert json.loads(capsys.readouterr().out)["versions"] == report["versions"]


def test_corpus_export_and_errors(tmp_path, capsys):
    out = tmp_path / "sw.jsonl"
    assert main(["corpus", "en", "sw", "--books", "57", "--parallel", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and rows[0]["lang"] == "sw" and rows[0]["meta"]["parallel_lang"] == "en"
    bad = tmp_path / "bad.jsonl"
    assert main(["corpus", "zz", "-o", str(bad)]) == 2
    assert "Unknown language 'zz'" in capsys.readouterr().err
    assert main(["corpus", "sw", "--limit", "-3", "-o", str(bad)]) == 2
    assert "limit must be at least 1" in capsys.readouterr().err
    assert main(["corpus", "sw"]) == 2
    assert re.search(r"Set out=<file>", capsys.readouterr().err)
    assert not bad.exists()
