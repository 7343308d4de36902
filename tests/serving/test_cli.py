"""``lingualift serve``: start-up errors are one sentence and exit code 2; the recipe loads."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lingualift.cli import main
from lingualift.config import load_config
from lingualift.errors import LingualiftError
from lingualift.serving import ServeConfig
from lingualift.serving.job import check_store

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
