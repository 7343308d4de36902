"""What docs/serving.md and the recipes' headers show: command lines, curl requests, client code.

Tests run every one of these (``test_docs_commands.py``), so the documentation cannot drift
from what the server does.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

REPO = Path(__file__).parents[2]
SERVING_DOC = REPO / "docs" / "serving.md"
RECIPES = REPO / "recipes"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def code_blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of a Markdown file in ``language``."""
    return [body for lang, body in _FENCE.findall(path.read_text()) if lang == language]


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def serve_commands() -> list[tuple[str, list[str]]]:
    """Every ``lingualift serve`` command line in docs/serving.md and in the recipes' header
    comments: (where, the words after ``lingualift``), comments cut."""
    found: list[tuple[str, list[str]]] = []
    for block in code_blocks(SERVING_DOC, "bash"):
        for line in _logical_lines(block):
            if line.strip().startswith("lingualift serve"):
                found.append((f"docs/serving.md: {line.strip()}", _words(line)))
    for recipe in sorted(RECIPES.glob("*.yaml")):
        for line in recipe.read_text().splitlines():
            if not line.startswith("#"):
                break  # the header ends at the first key
            command = line.lstrip("#").strip()
            if command.startswith("lingualift serve"):
                found.append((f"recipes/{recipe.name}: {command}", _words(command)))
    return found


def _words(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    assert words[0] == "lingualift", line
    return words[1:]


@dataclasses.dataclass
class CurlRequest:
    """One curl command of the docs, as an HTTP request."""

    line: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    stream: bool


def curl_requests(path: Path = SERVING_DOC) -> list[CurlRequest]:
    """Every curl command in ``path``'s bash blocks."""
    requests = []
    for block in code_blocks(path, "bash"):
        for line in _logical_lines(block):
            if not line.strip().startswith("curl "):
                continue
            words = shlex.split(line, comments=True)[1:]
            headers, body, stream, url = {}, None, False, None
            i = 0
            while i < len(words):
                word = words[i]
                if word in ("-H", "--header"):
                    name, _, value = words[i + 1].partition(":")
                    headers[name.strip()] = value.strip()
                    i += 1
                elif word in ("-d", "--data"):
                    body = words[i + 1].encode()
                    i += 1
                elif word.startswith("-") and "N" in word:  # -N / -sN: no buffering, a stream
                    stream = True
                elif word.startswith("http"):
                    url = word
                i += 1
            assert url is not None, line
            route = "/" + url.split("://", 1)[1].split("/", 1)[1]
            requests.append(
                CurlRequest(line.strip(), "POST" if body else "GET", route, headers, body, stream)
            )
    return requests


def client_examples(path: Path = SERVING_DOC) -> list[str]:
    """The Python blocks of ``path`` that use the official openai client."""
    return [block for block in code_blocks(path, "python") if "from openai import" in block]
