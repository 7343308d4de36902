"""``lingualift serve``: start-up errors are one sentence and exit code 2; the recipe loads."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lingualift.cli import main
from lingualift.config import load_config
from lingualift.errors import LingualiftError
from lingualift.jobs.serve import ServeConfig, check_store

RECIPE = Path(__file__).parents[2] / "recipes" / "serve.yaml"


def test_the_recipe_loads_and_its_header_shows_the_command():
    config = load_config(ServeConfig, RECIPE, ["port=9000"])
    assert config.port == 9000 and config.host == "127.0.0.1"
    assert "lingualift serve --config recipes/serve.yaml" in RECIPE.read_text()


def test_a_missing_or_empty_store_is_one_sentence_unless_allowed(tmp_path, capsys):
    missing = tmp_path / "no-store"
    assert main(["serve", f"store={missing}", "port=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "allow_empty_store=true" in err
    (tmp_path / "empty").mkdir()
    assert main(["serve", f"store={tmp_path / 'empty'}", "port=0"]) == 2
    assert "holds no current adapter" in capsys.readouterr().err
    assert check_store(ServeConfig(store=str(missing), allow_empty_store=True)).root == missing


def test_a_port_in_use_is_one_sentence(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", f"store={tmp_path}", f"port={port}"]) == 2
    err = capsys.readouterr().err
    assert f"Port {port} on 127.0.0.1 is already in use" in err and err.count("\n") == 1


def test_bad_settings_are_refused_by_the_config(capsys):
    with pytest.raises(LingualiftError, match="default_max_tokens"):
        ServeConfig(default_max_tokens=200, max_tokens_limit=100)
    assert main(["serve", "max_queue=0"]) == 2
    assert "max_queue must be at least 1" in capsys.readouterr().err
    assert main(["serve", "engine=route", "port=0"]) == 2
    assert "needs upstream=" in capsys.readouterr().err


def test_the_verb_serves_until_sigterm_and_closes_its_traffic_log(model_dir, store, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from lingualift.serving import read_segments

    log_dir = tmp_path / "traffic"
    code = "import sys; from lingualift.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [f"model={model_dir}", f"store={store.root}", f"log_dir={log_dir}", "port=0"]
    server = subprocess.Popen(
        [sys.executable, "-c", code, "serve", *argv, "log_level=warning"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    try:
        first = server.stdout.readline()  # "serving tiny on http://127.0.0.1:<port> with ..."
        assert "with adapters fr/v1, sw/v1" in first, first
        url = first.split(" on ")[1].split()[0]
        for _ in range(100):  # uvicorn starts right after the line
            try:
                response = httpx.post(
                    f"{url}/v1/completions", json={"model": "sw", "prompt": "hi", "max_tokens": 2}
                )
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert response.json()["lingualift"]["adapter"] == "sw/v1"
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert [r["adapter"] for r in read_segments(log_dir)] == ["sw/v1"]
    assert not list(log_dir.glob("*.partial"))
