"""Training examples for an adapter: reading, tokenising, packing, the held-out split.

Three kinds of rows are understood:

* plain text (``text``): causal LM loss on every token;
* prompt/completion (``prompt``, ``completion``): loss on the completion only;
* chat (``messages``: a list of ``{role, content}``): rendered with the
  tokenizer's chat template, loss on the assistant turns only.

A COMPASS selection (records written by ``lingualift select``) is mixed in as
plain text. Every example is a pair of token lists (``input_ids``, ``labels``),
with ``-100`` in ``labels`` where no loss is taken.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lingualift.data import Columns, Record, iter_rows, read_records
from lingualift.data.columns import column_hint
from lingualift.data.io import warn_skipped
from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
FORMATS = ("text", "prompt_completion", "chat")


@dataclasses.dataclass
class Example:
    """One training example before tokenisation."""

    id: str
    kind: str
    """'text', 'prompt_completion' or 'chat'."""
    text: str = ""
    prompt: str = ""
    completion: str = ""
    messages: list[dict[str, str]] = dataclasses.field(default_factory=list)
    source: str = ""


@dataclasses.dataclass
class DataSummary:
    """What went into a run: recorded in the adapter card."""

    path: str
    role: str
    """'train' or 'selection'."""
    format: str
    rows: int
    fingerprint: str
    """sha256 over the examples' ids and contents, in order."""
    languages: dict[str, int] = dataclasses.field(default_factory=dict)


def _fingerprint(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for ex in examples:
        body = ex.text if ex.kind == "text" else f"{ex.prompt}\x1f{ex.completion}"
        if ex.kind == "chat":
            body = repr(ex.messages)
        digest.update(f"{ex.id}\t{ex.kind}\t{body}\n".encode())
    return digest.hexdigest()


def _detect_format(row: dict[str, Any], columns: Columns, where: str) -> str:
    """The format of a row whose columns the mapping has already renamed."""
    if "messages" in row:
        return "chat"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    raise LingualiftError(
        f"{where} has none of the columns {columns.text!r}, {columns.prompt!r}+"
        f"{columns.completion!r} or {columns.messages!r} (it has: {', '.join(map(str, row))}); "
        "map the right one with columns.text=<column> (or text_field=), "
        "columns.prompt=/columns.completion= or columns.messages=."
    )


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if isinstance(value, str):  # CSV/Parquet keep nested lists as JSON text
        import json

        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise LingualiftError(f"{where}: the messages field is not valid JSON.") from None
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    ):
        raise LingualiftError(
            f"{where}: messages must be a list of objects with 'role' and 'content'."
        )
    if not any(m["role"] == "assistant" for m in value):
        raise LingualiftError(f"{where}: a chat example needs at least one assistant message.")
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]


def read_examples(
    source: str,
    data_format: str = "auto",
    columns: Columns | None = None,
    limit: int | None = None,
) -> tuple[list[Example], DataSummary]:
    """Read a data file, folder or ``hf:`` dataset into examples of one format.

    ``columns`` maps the source's columns to ``text``, ``prompt``, ``completion``,
    ``messages``, ``id``, ``lang`` (and ``default_lang``), as in every verb.
    """
    columns = columns or Columns()
    default_lang = normalize_language(columns.default_lang) if columns.default_lang else ""
    examples: list[Example] = []
    langs: list[str] = []
    skipped: list[str] = []
    kind = None if data_format == "auto" else data_format
    if kind is not None and kind not in FORMATS:
        raise LingualiftError(f"Unknown data_format {kind!r}; use auto, {', '.join(FORMATS)}.")
    for name, row_no, row in iter_rows(source, columns):
        where = f"{name}:{row_no}"
        if kind is None:
            kind = _detect_format(row, columns, where)
        row_id = str(row.get("id") or row_no)
        if kind == "text":
            if "text" not in row:
                raise LingualiftError(
                    f"{where}: no {columns.text!r} column (it has: {', '.join(map(str, row))}); "
                    f"map the text column with {column_hint('text')}."
                )
            text = row.get("text")
            if not isinstance(text, str) or not text.strip():
                skipped.append(where)
                continue
            examples.append(Example(id=row_id, kind=kind, text=text, source=name))
        elif kind == "prompt_completion":
            if "prompt" not in row or "completion" not in row:
                raise LingualiftError(
                    f"{where}: missing {columns.prompt!r} or {columns.completion!r}; every "
                    "prompt/completion row needs both (map them with columns.prompt=<column> "
                    "and columns.completion=<column>)."
                )
            prompt, completion = row["prompt"], row["completion"]
            if not isinstance(completion, str) or not completion.strip():
                skipped.append(where)
                continue
            examples.append(
                Example(
                    id=row_id,
                    kind=kind,
                    prompt=str(prompt or ""),
                    completion=completion,
                    source=name,
                )
            )
        else:  # chat
            if "messages" not in row:
                raise LingualiftError(
                    f"{where}: no {columns.messages!r} column; every chat row needs one "
                    "(map it with columns.messages=<column>)."
                )
            examples.append(
                Example(
                    id=row_id,
                    kind=kind,
                    messages=_messages(row["messages"], where),
                    source=name,
                )
            )
        raw_lang = row.get("lang")
        try:
            langs.append(normalize_language(str(raw_lang)) if raw_lang else default_lang)
        except LingualiftError as exc:
            raise LingualiftError(f"{where}: {exc}") from None
        if limit is not None and len(examples) >= limit:
            break
    warn_skipped(skipped, columns.completion if kind == "prompt_completion" else columns.text)
    if not examples:
        raise LingualiftError(f"{source} holds no usable examples; give a non-empty dataset.")
    return _finish(examples, source, "train", kind or "text", langs)


def examples_from_records(
    records: Sequence[Record], source: str, role: str = "train", id_prefix: str = ""
) -> tuple[list[Example], DataSummary]:
    """Plain-text examples from records (embedded-corpus verses, a COMPASS selection)."""
    examples = [
        Example(id=f"{id_prefix}{r.id}", kind="text", text=r.text, source=source) for r in records
    ]
    if not examples:
        raise LingualiftError(f"{source} holds no usable examples; give a non-empty dataset.")
    return _finish(examples, source, role, "text", [r.lang or "" for r in records])


def read_selection(path: str, limit: int | None = None) -> tuple[list[Example], DataSummary]:
    """Read a COMPASS selection file (lingualift records) as plain-text examples."""
    records = read_records(path)
    if limit is not None:
        records = records[:limit]
    return examples_from_records(records, path, "selection", id_prefix="selection:")


def _finish(
    examples: list[Example], path: str, role: str, kind: str, langs: Iterable[str]
) -> tuple[list[Example], DataSummary]:
    counts = Counter(lang for lang in langs if lang)
    summary = DataSummary(
        path=str(path),
        role=role,
        format=kind,
        rows=len(examples),
        fingerprint=_fingerprint(examples),
        languages=dict(counts.most_common()),
    )
    return examples, summary


def selection_report(path: str) -> dict[str, Any] | None:
    """The report COMPASS wrote beside a selection, if there is one.

    Looked up as ``<stem>.report.json``, ``<stem>_report.json`` or ``report.json``
    in the selection's folder.
    """
    import json

    selection = Path(path)
    for candidate in (
        selection.with_name(f"{selection.stem}.report.json"),
        selection.with_name(f"{selection.stem}_report.json"),
        selection.with_name("report.json"),
    ):
        if candidate.is_file():
            try:
                return {"path": str(candidate), **json.loads(candidate.read_text("utf-8"))}
            except (json.JSONDecodeError, TypeError):
                logger.warning("Ignoring unreadable selection report %s", candidate)
    return None


def split_heldout(
    examples: Sequence[Example], fraction: float, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """Deterministic train/held-out split by a hash of each example's id.

    Hashing ids (rather than shuffling positions) keeps an example on the same
    side when rows are added to or removed from the data.
    """
    if fraction <= 0 or len(examples) < 2:
        return list(examples), []
    n_eval = max(1, round(fraction * len(examples)))
    ranked = sorted(
        range(len(examples)),
        key=lambda i: hashlib.sha1(f"{seed}\x1f{examples[i].id}\x1f{i}".encode()).hexdigest(),
    )
    held = set(ranked[:n_eval])
    train = [ex for i, ex in enumerate(examples) if i not in held]
    heldout = [ex for i, ex in enumerate(examples) if i in held]
    return train, heldout


HELDOUT_FILE = "heldout.jsonl"
"""The held-out examples kept in a version folder (the set a later update's gate scores it on)."""


def write_examples(examples: Sequence[Example], path: str | Path) -> Path:
    """Examples as JSONL (one object per example, every field), atomically."""
    import json

    from lingualift.atomic import atomic_write_text

    lines = "".join(
        json.dumps(dataclasses.asdict(ex), ensure_ascii=False) + "\n" for ex in examples
    )
    atomic_write_text(Path(path), lines)
    return Path(path)


def read_examples_file(path: str | Path) -> list[Example]:
    """Examples written by :func:`write_examples`; a damaged line is named by file and line."""
    import json

    from lingualift.textio import read_text

    path = Path(path)
    lines = read_text(path).splitlines()
    fields = {f.name for f in dataclasses.fields(Example)}
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LingualiftError(
                f"{path}:{number}: malformed JSON ({exc.msg}); fix or remove that line."
            ) from None
        if not isinstance(row, dict) or "id" not in row or "kind" not in row:
            raise LingualiftError(
                f"{path}:{number}: not an example (an object with id, kind and its text); "
                "fix or remove that line."
            )
        examples.append(Example(**{k: v for k, v in row.items() if k in fields}))
    return examples


def _encode(tokenizer, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def tokenize_example(example: Example, tokenizer, max_length: int) -> dict[str, list[int]]:
    """``input_ids`` and ``labels`` of one example (labels -100 where no loss is taken)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if example.kind == "text":
        ids = _encode(tokenizer, example.text, True) + eos
        labels = list(ids)
    elif example.kind == "prompt_completion":
        prompt = _encode(tokenizer, example.prompt, True)
        completion = _encode(tokenizer, example.completion, False) + eos
        ids = prompt + completion
        labels = [IGNORE_INDEX] * len(prompt) + completion
    else:
        ids, labels = _tokenize_chat(example, tokenizer)
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def _tokenize_chat(example: Example, tokenizer) -> tuple[list[int], list[int]]:
    """Render the conversation; label the tokens each assistant turn adds."""
    if not getattr(tokenizer, "chat_template", None):
        raise LingualiftError(
            "The tokenizer has no chat template; use prompt/completion data for this model."
        )

    def render(messages, generation_prompt: bool) -> list[int]:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
        return _encode(tokenizer, text, False)

    messages = example.messages
    ids = render(messages, False)
    labels = [IGNORE_INDEX] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render(messages[:i], True))
        end = len(render(messages[: i + 1], False))
        labels[start:end] = ids[start:end]
    return ids, labels


def pack(rows: Sequence[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """Concatenate tokenised examples into ``max_length`` rows that keep documents apart.

    Each row carries ``position_ids`` that restart at 0 where a document starts
    (an example cut at a row's end goes on, from 0 again, in the next row). Given
    ``position_ids`` and no attention mask, transformers builds a block-diagonal
    causal mask from them (``masking_utils.find_packed_sequence_indices``, for
    eager, sdpa and flash attention alike), so a token attends only to earlier
    tokens of its own document, and rotary positions count from the document's
    start: each document's logits are those it gets alone. The first token of
    every document has no label (alone, nothing predicts it), so no loss crosses
    a boundary either. Rows with nothing to learn from are dropped.
    """
    packed: list[dict[str, list[int]]] = []
    row: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}

    def flush() -> None:
        nonlocal row
        if any(label != IGNORE_INDEX for label in row["labels"]):
            packed.append(row)
        row = {"input_ids": [], "labels": [], "position_ids": []}

    for example in rows:
        ids, labels = list(example["input_ids"]), list(example["labels"])
        while ids:
            take = max_length - len(row["input_ids"])
            piece, piece_labels = ids[:take], labels[:take]
            ids, labels = ids[take:], labels[take:]
            row["input_ids"] += piece
            row["labels"] += [IGNORE_INDEX, *piece_labels[1:]]
            row["position_ids"] += list(range(len(piece)))
            if len(row["input_ids"]) == max_length:
                flush()
    if row["input_ids"]:
        flush()
    return packed


def tokenize_examples(
    examples: Sequence[Example], tokenizer, max_length: int, packing: bool = False
) -> list[dict[str, list[int]]]:
    """Tokenise, then pack or drop rows with nothing to learn from."""
    rows = [
        tokenize_example(ex, tokenizer, max_length if not packing else 10**9) for ex in examples
    ]
    if packing:
        return pack(rows, max_length)
    return [r for r in rows if any(label != IGNORE_INDEX for label in r["labels"][1:])]


def collate(rows: Sequence[dict[str, list[int]]], pad_token_id: int):
    """Right-pad rows into tensors: input_ids, labels, and attention_mask or position_ids.

    Plain rows get an ``attention_mask``. Packed rows (with ``position_ids``) get
    ``position_ids`` and no mask, which is what makes transformers keep their
    documents apart (:func:`pack`); the padding becomes a segment of its own that
    no document attends to, with no labels. Packed batches also carry
    ``num_tokens`` (the non-padding tokens), which is not a model input:
    :func:`model_inputs` drops it.
    """
    import torch

    packed = "position_ids" in rows[0]
    width = max(len(r["input_ids"]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.arange(width).repeat(len(rows), 1)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        input_ids[i, :n] = torch.tensor(row["input_ids"])
        labels[i, :n] = torch.tensor(row["labels"])
        attention[i, :n] = 1
        if packed:
            positions[i, :n] = torch.tensor(row["position_ids"])
            positions[i, n:] = torch.arange(width - n)  # padding: a segment of its own
    if packed:
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": positions,
            "num_tokens": attention.sum(),
        }
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def token_count(batch: dict[str, Any]) -> int:
    """Non-padding tokens of a collated batch."""
    if "num_tokens" in batch:
        return int(batch["num_tokens"])
    return int(batch["attention_mask"].sum())


def model_inputs(batch: dict[str, Any], device: Any = None) -> dict[str, Any]:
    """The model's keyword arguments from a collated batch (on ``device``).

    Packed batches also turn the cache off: transformers detects packed
    ``position_ids`` only when no cache object is passed along.
    """
    inputs = {k: v.to(device) if device is not None else v for k, v in batch.items()}
    if inputs.pop("num_tokens", None) is not None:
        inputs["use_cache"] = False
    return inputs
