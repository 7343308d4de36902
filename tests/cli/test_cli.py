import json

import pytest

from lingualift.cli import VERB_MODULES, build_parser, main


def test_every_verb_has_help(capsys):
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    assert len(verbs) >= len(VERB_MODULES)
    for verb in verbs:
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
        assert "usage: lingualift" in capsys.readouterr().out


def test_info_lists_the_embedded_assets(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assets = {a["asset"].split(" (")[0]: a["available"] for a in report["embedded_assets"]}
    assert all(assets.values()), assets
    assert len(assets) == 3
    assert report["versions"]["torch"].startswith("2.13.0")


def test_corpus_export_and_errors(tmp_path, capsys):
    out = tmp_path / "sw.jsonl"
    assert main(["corpus", "en", "sw", "--books", "57", "--parallel", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and rows[0]["lang"] == "sw" and rows[0]["meta"]["parallel_lang"] == "en"
    bad = tmp_path / "bad.jsonl"
    assert main(["corpus", "zz", "-o", str(bad)]) == 2
    assert "Unknown language 'zz'" in capsys.readouterr().err
    assert not bad.exists()
