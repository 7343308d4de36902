import json
import shlex

from lingualift.cli import main


def test_train_then_list_show_promote_rollback_and_generate(
    tmp_path, tiny_model_dir, text_file, capsys
):
    store = str(tmp_path / "store")
    common = [
        f"model={tiny_model_dir}",
        f"data={text_file}",
        f"store={store}",
        "train.batch_size=2",
    ]
    for i in range(2):
        args = [
            "train", "lang=sw", *common, "train.max_steps=2", f"train.seed={i}",
            f"out_dir={tmp_path / f'run{i}'}",
        ]  # fmt: skip
        assert main(args) == 0
    out = capsys.readouterr().out
    # The first version becomes current; the second is stored with the command that promotes it.
    assert "stored sw/v2" in out and "sw/v2 is not current" in out
    command = out.strip().splitlines()[-1].split("to serve it: ")[1]
    assert command == f"lingualift adapters promote sw v2 store={store}"

    def current_versions():
        assert main(["adapters", "--store", store, "list", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        return [(r["version"], r["current"]) for r in rows]

    assert current_versions() == [(1, True), (2, False)]
    assert main(shlex.split(command)[1:]) == 0
    assert "sw/v2 is now current" in capsys.readouterr().out
    assert current_versions() == [(1, False), (2, True)]
    assert main(["adapters", "--store", store, "show", "sw", "v1"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["base_model"]["spec"] == str(tiny_model_dir) and card["metrics"]["steps"] == 2
    assert main(["adapters", "--store", store, "rollback", "sw"]) == 0
    assert "sw/v1 is now current" in capsys.readouterr().out
    assert main(["adapters", "--store", store, "promote", "sw", "2"]) == 0
    assert main(["adapters", "--store", store, "list"]) == 0
    assert "* sw/v2" in capsys.readouterr().out

    out = tmp_path / "gen.jsonl"
    argv = ["generate", "--model", str(tiny_model_dir), "--store", store, "--max-new-tokens", "3"]
    assert main([*argv, "--lang", "sw", "jambo", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["meta"]["adapter"] == "sw/v2"
    capsys.readouterr()
    assert main([*argv, "--lang", "yo", "bawo ni"]) == 0
    captured = capsys.readouterr()
    assert "no adapter for 'yo'" in captured.err
    assert json.loads(captured.out)["adapter"] is None
    assert main([*argv, "--lang", "yo", "--strict", "bawo ni"]) == 2


def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "no text"}\n')
    store = tmp_path / "store"
    argv = ["train", "lang=sw", f"model={tiny_model_dir}", f"data={bad}", f"store={store}"]
    assert main([*argv, f"out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "has none of the columns 'text'" in err
    assert len(err.splitlines()) == 1
    assert not store.exists() and not (tmp_path / "run").exists()
    assert main(["adapters", "--store", str(store), "show", "yo"]) == 2
    assert "No adapter for language 'yo'" in capsys.readouterr().err
    assert main(["adapters", "--store", str(store), "list"]) == 0
    assert "no adapters" in capsys.readouterr().out
