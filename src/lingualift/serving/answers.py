"""The engine's events of one request as OpenAI answers: a whole answer, or stream chunks.

A request is one or more prompts with ``n`` choices each; the engine reports
every choice by its index (prompt by prompt, then choice by choice, as OpenAI
numbers them). :class:`Answer` knows what the request asked for (``echo``, how
many logprobs, the kind of route) and builds from those events:

* :meth:`Answer.whole`: the non-streaming answer, choices in index order, the
  echoed prompt (and its logprobs) before each completion, usage summed over
  the choices (prompt tokens once per prompt, as vLLM counts);
* :meth:`Answer.opening`, :meth:`Answer.delta`, :meth:`Answer.finish`,
  :meth:`Answer.usage_chunk`: the stream's server-sent events, chat's first
  ``{"role": "assistant"}`` delta and completions' echoed prompt per choice,
  each chunk with the logprobs of the tokens it carries.

Completions' ``text_offset`` counts characters from the start of the prompt
(OpenAI's convention), so without echo the first offset is the prompt's length.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any, Literal

from lingualift.serving import protocol as oa
from lingualift.serving.decoding import TokenLogprobs
from lingualift.serving.engine import Finished, Started, TextDelta

Kind = Literal["completion", "chat"]


@dataclasses.dataclass
class Answer:
    """What one request asked for and how its answers look (see the module docstring)."""

    kind: Kind
    request_id: str
    created: int
    """The Unix second the answer was made (OpenAI's ``created``)."""
    model: str
    """``model`` as the client sent it."""
    prompt_ids: list[list[int]]
    prompt_texts: list[str]
    """Each prompt's text (decoded from its ids when the client sent ids)."""
    n: int
    echo: bool
    logprobs: int | None
    """Alternatives per token when logprobs were asked, else None."""
    info: dict[str, Any]
    """The ``lingualift`` field: adapter, language, fallback."""
    fingerprint: str
    """``system_fingerprint``: the adapter version that served it ('sw/v3', or 'base')."""
    strings: oa.TokenStrings
    lock: threading.Lock
    """The tokenizer's lock (token strings decode with the tokenizer the worker uses)."""
    _offsets: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def choices(self) -> int:
        return len(self.prompt_ids) * self.n

    @property
    def object(self) -> str:
        return "text_completion" if self.kind == "completion" else "chat.completion"

    @property
    def chunk_object(self) -> str:
        return "text_completion" if self.kind == "completion" else "chat.completion.chunk"

    def _prompt(self, index: int) -> int:
        return index // self.n

    def _envelope(self, obj: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return oa.envelope(
            obj,
            self.request_id,
            self.created,
            self.model,
            choices,
            system_fingerprint=self.fingerprint,
            **extra,
        )

    # -- logprobs -----------------------------------------------------------------------

    def _completion_logprobs(
        self, entries: Sequence[TokenLogprobs | None], tokens: Sequence[int], offset: int
    ) -> dict[str, Any]:
        with self.lock:
            return oa.completion_logprobs(entries, tokens, self.strings, text_offset=offset)

    def _chat_logprobs(self, entries: Sequence[TokenLogprobs]) -> dict[str, Any]:
        with self.lock:
            return oa.chat_logprobs(entries, self.strings)

    def _advance_offset(self, index: int, block: dict[str, Any]) -> None:
        self._offsets[index] += sum(len(token) for token in block["tokens"])

    # -- the whole answer ---------------------------------------------------------------

    def whole(self, started: Started, finished: Sequence[Finished]) -> dict[str, Any]:
        """The non-streaming answer from every choice's :class:`Finished` event."""
        choices = []
        for done in sorted(finished, key=lambda f: f.index):
            p = self._prompt(done.index)
            if self.kind == "chat":
                logprobs = None
                if self.logprobs is not None:
                    logprobs = self._chat_logprobs(done.logprobs or [])
                choices.append(oa.chat_choice(done.index, done.text, done.finish_reason, logprobs))
                continue
            text = (self.prompt_texts[p] if self.echo else "") + done.text
            logprobs = None
            if self.logprobs is not None:
                entries: list[TokenLogprobs | None] = list(done.logprobs or [])
                tokens = list(done.token_ids)
                offset = len(self.prompt_texts[p])
                if self.echo:
                    entries = list(started.prompt_logprobs.get(p, [])) + entries
                    tokens = self.prompt_ids[p] + tokens
                    offset = 0
                logprobs = self._completion_logprobs(entries, tokens, offset)
            choices.append(oa.completion_choice(done.index, text, done.finish_reason, logprobs))
        completion_tokens = sum(done.completion_tokens for done in finished)
        usage = oa.usage(started.prompt_tokens, completion_tokens)
        return self._envelope(self.object, choices, usage=usage, lingualift=self.info)

    # -- streams ------------------------------------------------------------------------

    def _chunk(
        self,
        index: int,
        text: str | None,
        finish_reason: str | None,
        logprobs: dict[str, Any] | None = None,
        delta: dict[str, Any] | None = None,
    ) -> bytes:
        if self.kind == "completion":
            choice = oa.completion_choice(index, text or "", finish_reason, logprobs)
        else:
            if delta is None:
                delta = {"content": text} if text is not None else {}
            choice = oa.chat_delta_choice(index, delta, finish_reason, logprobs)
        return oa.sse(self._envelope(self.chunk_object, [choice], lingualift=self.info))

    def opening(self, started: Started) -> list[bytes]:
        """What every choice's stream begins with: chat's assistant role; completions' echoed
        prompt (with its logprobs when asked)."""
        chunks = []
        for index in range(self.choices):
            p = self._prompt(index)
            self._offsets[index] = 0 if self.echo else len(self.prompt_texts[p])
            if self.kind == "chat":
                delta = {"role": "assistant", "content": ""}
                logprobs = {"content": [], "refusal": None} if self.logprobs is not None else None
                chunks.append(self._chunk(index, None, None, logprobs, delta=delta))
            elif self.echo:
                logprobs = None
                if self.logprobs is not None:
                    entries = started.prompt_logprobs.get(p, [])
                    logprobs = self._completion_logprobs(entries, self.prompt_ids[p], 0)
                    self._advance_offset(index, logprobs)
                else:
                    self._offsets[index] = len(self.prompt_texts[p])
                chunks.append(self._chunk(index, self.prompt_texts[p], None, logprobs))
        return chunks

    def delta(self, event: TextDelta) -> bytes:
        """A chunk with new text of one choice (and the logprobs of its tokens)."""
        logprobs = None
        if self.logprobs is not None:
            if self.kind == "chat":
                logprobs = self._chat_logprobs(event.logprobs)
            else:
                tokens = [entry.token for entry in event.logprobs]
                logprobs = self._completion_logprobs(
                    event.logprobs, tokens, self._offsets[event.index]
                )
                self._advance_offset(event.index, logprobs)
        return self._chunk(event.index, event.text, None, logprobs)

    def finish(self, event: Finished) -> bytes:
        """The chunk that ends one choice (its finish_reason, no text)."""
        return self._chunk(event.index, None, event.finish_reason)

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        """The stream's last chunk with ``stream_options.include_usage``: no choices, usage."""
        usage = oa.usage(prompt_tokens, completion_tokens)
        return oa.sse(self._envelope(self.chunk_object, [], usage=usage))
