"""Answers, stream chunks and logprobs in OpenAI's shapes.

Each answer is stamped with its own ``created`` (:func:`created_now`, the
Unix second it was made) and a ``system_fingerprint``: the adapter version
that served it (``sw/v3``, or ``base``), which is what decides whether two
seeded requests can give the same text (OpenAI's meaning of the field).

Logprobs (:class:`~lingualift.serving.decoding.TokenLogprobs`, from the
model's raw distribution) become completions' ``{tokens, token_logprobs,
top_logprobs, text_offset}`` or chat's ``{content: [{token, logprob, bytes,
top_logprobs}]}``; token strings come from :class:`TokenStrings`. A logprob
too small for a float is sent as -9999.0, as OpenAI does (JSON has no
-Infinity).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from typing import Any

from lingualift.serving.decoding import TokenLogprobs

LOGPROB_FLOOR = -9999.0
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # SentencePiece's byte fallback


def created_now(when: float | None = None) -> int:
    """OpenAI's ``created``: the Unix second of ``when`` (default: now)."""
    return int(time.time() if when is None else when)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _logprob(value: float) -> float:
    return value if math.isfinite(value) else LOGPROB_FLOOR


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet back to bytes (the printable stand-ins for 0-255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes, shift = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shift)
            shift += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


class TokenStrings:
    """Token ids to the strings and UTF-8 bytes logprobs show (cached per id).

    The string is ``decode([id])`` with special tokens kept (vLLM's choice); the bytes are
    the token's exact bytes where the tokenizer says them (byte-level BPE, SentencePiece
    byte fallback), so a client can rebuild characters split over tokens.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._text: dict[int, str] = {}
        self._bytes: dict[int, list[int]] = {}
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self._byte_level = decoder is not None and "ByteLevel" in type(decoder).__name__
        self._byte_map = _byte_decoder() if self._byte_level else {}

    def text(self, token: int) -> str:
        if token not in self._text:
            self._text[token] = self.tokenizer.decode([token], skip_special_tokens=False)
        return self._text[token]

    def bytes(self, token: int) -> list[int]:
        if token not in self._bytes:
            self._bytes[token] = list(self._exact_bytes(token))
        return self._bytes[token]

    def _exact_bytes(self, token: int) -> bytes:
        piece = self.tokenizer.convert_ids_to_tokens(token)
        if isinstance(piece, str):
            if match := _BYTE_PIECE.match(piece):
                return bytes([int(match.group(1), 16)])
            if self._byte_level and piece and all(c in self._byte_map for c in piece):
                return bytes(self._byte_map[c] for c in piece)
            if "▁" in piece:  # SentencePiece's space
                return piece.replace("▁", " ").encode("utf-8", "replace")
        return self.text(token).encode("utf-8", "replace")


def completion_logprobs(
    entries: Sequence[TokenLogprobs | None],
    tokens: Sequence[int],
    strings: TokenStrings,
    text_offset: int = 0,
) -> dict[str, Any]:
    """Completions' ``logprobs``: one entry per token of ``tokens`` (the echoed prompt's, whose
    first has no logprob, then the generated ones). ``top_logprobs`` maps token strings to
    logprobs, the chosen token's included (OpenAI's "up to logprobs + 1"). ``text_offset`` is
    each token's character offset, counted from ``text_offset``."""
    out: dict[str, Any] = {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }
    offset = text_offset
    for token, entry in zip(tokens, entries, strict=True):
        text = strings.text(token)
        out["tokens"].append(text)
        out["text_offset"].append(offset)
        offset += len(text)
        if entry is None:
            out["token_logprobs"].append(None)
            out["top_logprobs"].append(None)
            continue
        out["token_logprobs"].append(_logprob(entry.logprob))
        top = {strings.text(t): _logprob(v) for t, v in entry.top}
        top.setdefault(text, _logprob(entry.logprob))
        out["top_logprobs"].append(top)
    return out


def chat_logprobs(entries: Sequence[TokenLogprobs], strings: TokenStrings) -> dict[str, Any]:
    """Chat's ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}], "refusal":
    None}`` with exactly the requested number of alternatives per token."""

    def item(token: int, logprob: float) -> dict[str, Any]:
        return {
            "token": strings.text(token),
            "logprob": _logprob(logprob),
            "bytes": strings.bytes(token),
        }

    content = [
        {**item(e.token, e.logprob), "top_logprobs": [item(t, v) for t, v in e.top]}
        for e in entries
    ]
    return {"content": content, "refusal": None}


# -- answers -----------------------------------------------------------------------------------


def completion_choice(
    index: int, text: str, finish_reason: str | None, logprobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def chat_choice(
    index: int, text: str, finish_reason: str | None, logprobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", "content": text, "refusal": None},
        "logprobs": logprobs,
        "finish_reason": finish_reason,
    }


def chat_delta_choice(
    index: int,
    delta: dict[str, Any],
    finish_reason: str | None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}


def envelope(
    obj: str,
    request_id: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    *,
    system_fingerprint: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields every OpenAI answer and stream chunk share, around ``choices``.

    Without a ``system_fingerprint`` the key is left out: OpenAI's schema types it as a string
    (optional, never null), and a strict client would refuse a null.
    """
    fingerprint = {} if system_fingerprint is None else {"system_fingerprint": system_fingerprint}
    return {
        "id": request_id,
        "object": obj,
        "created": created,
        "model": model,
        **fingerprint,
        "choices": choices,
        **extra,
    }


def completion_response(
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    token_usage: dict[str, int],
    info: dict[str, Any],
) -> dict[str, Any]:
    """A one-choice completion answer (see :func:`envelope` for several choices)."""
    choice = completion_choice(0, text, finish_reason)
    return envelope(
        "text_completion", request_id, created, model, [choice], usage=token_usage, lingualift=info
    )


def completion_chunk(
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None,
    info: dict[str, Any],
    *,
    index: int = 0,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = completion_choice(index, text, finish_reason, logprobs)
    return envelope("text_completion", request_id, created, model, [choice], lingualift=info)


def chat_response(
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    token_usage: dict[str, int],
    info: dict[str, Any],
) -> dict[str, Any]:
    """A one-choice chat answer (see :func:`envelope` for several choices)."""
    choice = chat_choice(0, text, finish_reason)
    return envelope(
        "chat.completion", request_id, created, model, [choice], usage=token_usage, lingualift=info
    )


def chat_chunk(
    request_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None,
    info: dict[str, Any],
    *,
    index: int = 0,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = chat_delta_choice(index, delta, finish_reason, logprobs)
    return envelope("chat.completion.chunk", request_id, created, model, [choice], lingualift=info)


def usage_chunk(
    request_id: str, created: int, model: str, obj: str, token_usage: dict[str, int]
) -> dict[str, Any]:
    """The last chunk of a stream with ``stream_options.include_usage``: no choices, the usage."""
    return envelope(obj, request_id, created, model, [], usage=token_usage)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event (``data: ...`` and a blank line)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


SSE_DONE = sse("[DONE]")
