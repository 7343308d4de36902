"""JSON mode: constrained decoding with llguidance, so ``response_format`` is kept, not hoped for.

``response_format: {"type": "json_object"}`` or ``{"type": "json_schema", ...}``
asks for an answer that parses (and follows the schema). A prompt cannot
promise that; masking, at every step, the tokens that cannot continue valid
JSON can. That is what vLLM does with xgrammar or llguidance as its backend;
this module uses llguidance (the ``json`` extra): one small wheel without
dependencies, CPU-only Rust, fast enough to compute a mask over Gemma 3's
262k-token vocabulary in well under a millisecond, and it reads byte-level
BPE and byte-fallback SentencePiece tokenizers from their ``tokenizer.json``.
(xgrammar works on CPU too but pulls Triton in as a dependency; Outlines and
lm-format-enforcer are slower per step.) Tokenizers it cannot read
(SentencePiece without byte fallback, slow tokenizers) leave JSON mode off,
and requests for it get a 400 saying why.

JSON is written with ``", "`` and ``": "`` between items and no other
whitespace, so a model cannot spend its tokens on indentation.

:class:`JsonConstraints` is built once per tokenizer (6 to 16 s for Gemma 3's
vocabulary on a 2-core machine; milliseconds for small ones) and compiles each request's schema
into a :class:`JsonGrammar`; each row starts its own matcher from it
(:class:`~lingualift.serving.decoding.RowState`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from typing import Any

from lingualift.errors import LingualiftError, first_line

JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
"""How llguidance writes JSON: compact, with json.dumps' separators."""


@functools.cache
def _shifts() -> Any:
    """0..31 as int32, to unpack the 32 tokens of a mask word (made once; torch loads lazily)."""
    import torch

    return torch.arange(32, dtype=torch.int32)


class ConstraintError(LingualiftError):
    """JSON mode is off on this server, or a schema cannot be enforced."""


@dataclasses.dataclass(eq=False)
class JsonRowState:
    """One row's place in its JSON grammar."""

    matcher: Any
    vocab_words: int

    def allowed(self, vocab_size: int, device: Any) -> Any:
        """The tokens the grammar allows next, as a bool tensor of ``vocab_size``."""
        import torch

        words = torch.empty(self.vocab_words, dtype=torch.int32)
        self.matcher.unsafe_compute_mask_ptr(words.data_ptr(), self.vocab_words * 4)
        # Token t is bit t % 32 of word t // 32.
        bits = ((words[:, None] >> _shifts()) & 1).bool().flatten()
        if bits.shape[0] < vocab_size:  # ids the tokenizer does not have are never allowed
            bits = torch.cat([bits, bits.new_zeros(vocab_size - bits.shape[0])])
        return bits[:vocab_size].to(device)

    def accept(self, token: int) -> None:
        """Advance past ``token`` (a token the mask did not allow puts the matcher in an error
        state, whose mask allows only end-of-sequence)."""
        self.matcher.consume_token(token)

    @property
    def finished(self) -> bool:
        """The JSON is complete: only end-of-sequence may follow."""
        return bool(self.matcher.is_stopped())


@dataclasses.dataclass(frozen=True, eq=False)
class JsonGrammar:
    """A compiled response format; rows start from it (:meth:`start`)."""

    tokenizer: Any
    grammar: str
    vocab_words: int

    def start(self) -> JsonRowState:
        import llguidance

        matcher = llguidance.LLMatcher(self.tokenizer, self.grammar, log_level=0)
        return JsonRowState(matcher, self.vocab_words)


class JsonConstraints:
    """Compiles JSON Schemas into grammars over one tokenizer's vocabulary (llguidance).

    ``vocab_size`` is the model's (its logits may have more rows than the tokenizer has
    tokens; those ids are never allowed); ``eos_ids`` end a finished answer. Raises
    :class:`ConstraintError` when llguidance is not installed or cannot read the tokenizer.
    """

    available = True

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: Sequence[int] = ()) -> None:
        try:
            import llguidance
            import llguidance.hf
        except ImportError:
            raise ConstraintError(
                "JSON mode needs llguidance; install the json extra "
                "(pip install 'lingualift[json]') and restart the server."
            ) from None
        eos = list(eos_ids) or None
        try:
            self.tokenizer = llguidance.hf.from_tokenizer(
                tokenizer, n_vocab=vocab_size, eos_token=eos
            )
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ConstraintError(
                f"JSON mode is off: llguidance cannot read this model's tokenizer "
                f"({first_line(exc)})."
            ) from None
        self.vocab_size = vocab_size
        self.reason = ""
        self._words = (self.tokenizer.vocab_size + 31) // 32

    def compile(self, schema: dict[str, Any]) -> JsonGrammar:
        """The grammar of JSON following ``schema`` (``{"type": "object"}``: any JSON object).

        Raises :class:`ConstraintError` with llguidance's reason for a schema it cannot
        enforce (an invalid schema, or one beyond its limits).
        """
        import llguidance

        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(schema), overrides=JSON_OPTIONS
            )
        except (ValueError, TypeError) as exc:
            raise ConstraintError(f"The JSON Schema cannot be read ({first_line(exc)}).") from None
        limits = llguidance.LLParserLimits(verbose_errors=False)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
            grammar, self.tokenizer, limits=limits
        )
        if is_error:
            lines = messages[0].strip().splitlines() if messages else []
            reason = lines[0][:200] if lines else "no reason given"
            raise ConstraintError(f"The JSON Schema cannot be enforced ({reason}).")
        return JsonGrammar(self.tokenizer, grammar, self._words)


class NoJsonConstraints:
    """What a server without JSON mode has: every compile is refused with the reason."""

    available = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def compile(self, schema: dict[str, Any]) -> JsonGrammar:
        raise ConstraintError(self.reason)


def load_json_constraints(
    tokenizer: Any, vocab_size: int, eos_ids: Sequence[int] = ()
) -> JsonConstraints | NoJsonConstraints:
    """JSON mode for this tokenizer, or a stand-in that refuses it saying why (never raises)."""
    try:
        return JsonConstraints(tokenizer, vocab_size, eos_ids)
    except ConstraintError as exc:
        return NoJsonConstraints(str(exc))
