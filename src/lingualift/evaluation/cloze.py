"""Cloze-style verse completion: a multiple-choice set built from held-out target-language text.

Every question is the first part of a verse; the options are its true ending
and the endings of three other verses of the same language and book whose
length is close to it, so that length alone does not give the answer away.
The set is deterministic for a seed and is written as Global-MMLU rows
(``question, option_a..option_d, answer, subject, subject_category, lang``),
so ``lingualift eval data=<file>`` and :func:`lingualift.evaluation.mcq.load_mcq`
read it unchanged.

Two ways to score it:

* as Global-MMLU (``lingualift eval task=global-mmlu data=cloze.jsonl``): the
  model picks an answer *letter*; small models sit near chance on letters;
* as completion (:func:`score_cloze`): the log-likelihood of each ending after
  the verse's beginning, raw and per character (lm-eval's ``acc`` /
  ``acc_norm`` of HellaSwag-style tasks), which already separates small models.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.errors import LingualiftError, require
from lingualift.evaluation.mcq import LETTERS, MCQItem
from lingualift.evaluation.scoring import ApplyFn, LoglikelihoodScorer
from lingualift.languages import normalize_language

# Languages written without spaces between words: split by characters.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja"})

BOOK_NAMES = [
    "Genesis",
    "Exodus",
    "Leviticus",
    "Numbers",
    "Deuteronomy",
    "Joshua",
    "Judges",
    "Ruth",
    "1_Samuel",
    "2_Samuel",
    "1_Kings",
    "2_Kings",
    "1_Chronicles",
    "2_Chronicles",
    "Ezra",
    "Nehemiah",
    "Esther",
    "Job",
    "Psalms",
    "Proverbs",
    "Ecclesiastes",
    "Song_of_Songs",
    "Isaiah",
    "Jeremiah",
    "Lamentations",
    "Ezekiel",
    "Daniel",
    "Hosea",
    "Joel",
    "Amos",
    "Obadiah",
    "Jonah",
    "Micah",
    "Nahum",
    "Habakkuk",
    "Zephaniah",
    "Haggai",
    "Zechariah",
    "Malachi",
    "Matthew",
    "Mark",
    "Luke",
    "John",
    "Acts",
    "Romans",
    "1_Corinthians",
    "2_Corinthians",
    "Galatians",
    "Ephesians",
    "Philippians",
    "Colossians",
    "1_Thessalonians",
    "2_Thessalonians",
    "1_Timothy",
    "2_Timothy",
    "Titus",
    "Philemon",
    "Hebrews",
    "James",
    "1_Peter",
    "2_Peter",
    "1_John",
    "2_John",
    "3_John",
    "Jude",
    "Revelation",
]

CLOZE_CATEGORY = "verse-cloze"
N_OPTIONS = 4


@dataclasses.dataclass(frozen=True)
class _Split:
    verse_id: str
    book: int
    prefix: str
    ending: str


def book_name(book: int) -> str:
    """English name of a corpus book number (1-66), e.g. 43 -> 'John'."""
    return BOOK_NAMES[book - 1].lower() if 1 <= book <= len(BOOK_NAMES) else f"book_{book}"


def _units(text: str, lang: str) -> tuple[list[str], str]:
    """Words (or characters, for zh/ja) of a verse and the string that rejoins them."""
    if lang in NO_SPACE_LANGUAGES:
        return list(text), ""
    return text.split(), " "


def split_verse(
    text: str, lang: str, rng: np.random.Generator, min_units: int = 8
) -> tuple[str, str] | None:
    """(beginning, ending) of a verse cut near its middle, or None when it is too short."""
    units, joiner = _units(text.strip(), lang)
    n = len(units)
    if n < min_units:
        return None
    # A cut between 40% and 60% of the verse keeps both sides informative.
    lo, hi = max(2, round(0.4 * n)), min(n - 2, round(0.6 * n))
    cut = int(rng.integers(lo, hi + 1)) if hi >= lo else n // 2
    return joiner.join(units[:cut]).strip(), joiner.join(units[cut:]).strip()


def _distractors(
    target: _Split, pool: Sequence[_Split], rng: np.random.Generator, window: int
) -> list[str]:
    """Three endings of other verses in the same book, drawn among the closest in length."""
    length = len(target.ending)
    seen = {target.ending.strip().lower()}
    candidates = []
    for other in pool:
        key = other.ending.strip().lower()
        if other.verse_id == target.verse_id or key in seen:
            continue
        seen.add(key)
        candidates.append(other)
    candidates.sort(key=lambda s: (abs(len(s.ending) - length), s.verse_id))
    near = candidates[: max(window, N_OPTIONS - 1)]
    if len(near) < N_OPTIONS - 1:
        return []
    picks = rng.choice(len(near), size=N_OPTIONS - 1, replace=False)
    return [near[i].ending for i in sorted(picks)]


def build_cloze(
    lang: str,
    books: str | Iterable[int | str] = "nt",
    n: int = 200,
    seed: int = 0,
    min_units: int = 8,
    window: int = 8,
    records: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """Global-MMLU rows of a cloze verse-completion set in ``lang``.

    ``records`` (with ``id``, ``text``, ``lang`` and ``meta['book']``) replaces the
    embedded corpus when given; otherwise the verses of ``books`` are read from it.
    Questions are ``n`` verses drawn with ``seed`` (all eligible verses when fewer),
    in canonical order; ``window`` is how many nearest-length endings of the same
    book the three distractors are drawn from.
    """
    code = normalize_language(lang)
    require(n >= 1, f"n must be at least 1, got {n}.")
    require(window >= N_OPTIONS - 1, f"window must be at least {N_OPTIONS - 1}, got {window}.")
    if records is None:
        from lingualift.data import ParallelCorpus

        records = ParallelCorpus().monolingual(code, books)
    rng = np.random.default_rng(seed)
    by_book: dict[int, list[_Split]] = defaultdict(list)
    for record in records:
        if record.lang and normalize_language(record.lang) != code:
            continue
        parts = split_verse(record.text, code, rng, min_units)
        if parts is None:
            continue
        book = int(record.meta.get("book") or str(record.id).split(".")[0])
        by_book[book].append(_Split(str(record.id), book, *parts))
    eligible = [s for book in sorted(by_book) for s in by_book[book]]
    require(
        len(eligible) > N_OPTIONS,
        f"Only {len(eligible)} verses of {code!r} have {min_units}+ words in books {books!r}; "
        "choose more books or a lower min_units.",
    )
    order = rng.permutation(len(eligible))
    rows: list[dict[str, Any]] = []
    for index in order:
        if len(rows) >= n:
            break
        target = eligible[index]
        endings = _distractors(target, by_book[target.book], rng, window)
        if not endings:  # a book too small to give three different endings
            continue
        answer = int(rng.integers(N_OPTIONS))
        endings.insert(answer, target.ending)
        joiner = "" if code in NO_SPACE_LANGUAGES else " "
        row = {
            "sample_id": f"{code}:{target.verse_id}",
            "question": f"{target.prefix}{joiner}…",
            **{f"option_{c}": e for c, e in zip("abcd", endings, strict=True)},
            "answer": LETTERS[answer],
            "subject": book_name(target.book),
            "subject_category": CLOZE_CATEGORY,
            "lang": code,
            "prefix": target.prefix,
        }
        rows.append(row)
    require(rows, f"No cloze question could be built for {code!r} in books {books!r}.")
    # Canonical verse order: the same set reads the same whatever the draw order was.
    rows.sort(key=lambda r: tuple(int(x) for x in r["sample_id"].split(":")[1].split(".")))
    return rows


def write_cloze(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write cloze rows atomically as JSONL, CSV/TSV or Parquet (by suffix)."""
    import csv
    import io
    import json

    from lingualift.atomic import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    require(rows, "No cloze rows to write.")
    if suffix not in (".jsonl", ".json", ".csv", ".tsv", ".parquet"):
        raise LingualiftError(f"Cannot write {path}: use .jsonl, .csv, .tsv or .parquet.")
    with atomic_path(path) as tmp:
        if suffix in (".jsonl", ".json"):
            tmp.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
            )
        elif suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(list(rows)), tmp)
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(
                buffer, fieldnames=list(rows[0]), delimiter="\t" if suffix == ".tsv" else ","
            )
            writer.writeheader()
            writer.writerows(rows)
            tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def cloze_items(rows: Sequence[dict[str, Any]]) -> list[MCQItem]:
    """The rows as :class:`MCQItem` (what ``load_mcq`` would return for their file)."""
    return [
        MCQItem(
            id=r["sample_id"],
            lang=r["lang"],
            question=r["question"],
            options=[r[f"option_{c}"] for c in "abcd"],
            answer=LETTERS.index(r["answer"]),
            subject=r["subject"],
            subject_category=r["subject_category"],
        )
        for r in rows
    ]


@dataclasses.dataclass
class ClozeScore:
    """Completion accuracy of one model on a cloze set."""

    acc: float
    """Share of questions whose true ending has the highest log-likelihood."""
    acc_norm: float
    """The same with log-likelihood per character (no bias toward short endings)."""
    acc_stderr: float
    acc_norm_stderr: float
    n: int
    preds: list[int] = dataclasses.field(repr=False, default_factory=list)
    """Chosen option (by acc_norm) per question."""
    hits_norm: list[float] = dataclasses.field(repr=False, default_factory=list)
    """1.0 where the acc_norm choice is right, per question (for paired comparisons)."""


def _stderr(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def score_cloze(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    batch_size: int = 16,
    apply: ApplyFn | None = None,
    progress: bool = True,
) -> ClozeScore:
    """Completion scoring: log P(ending | beginning) for each option, pick the best."""
    require(rows, "No cloze questions to score; build them with build_cloze first.")
    pairs, langs = [], []
    for row in rows:
        joiner = "" if row["lang"] in NO_SPACE_LANGUAGES else " "
        prefix = row.get("prefix") or row["question"].rstrip("…").rstrip()
        for c in "abcd":
            pairs.append((prefix, joiner + row[f"option_{c}"]))
            langs.append(row["lang"])
    scorer = LoglikelihoodScorer(model, tokenizer, batch_size=batch_size, apply=apply)
    lls = [ll for ll, _ in scorer.loglikelihood(pairs, langs if apply else None, progress)]
    hits, hits_norm, preds = [], [], []
    for q, row in enumerate(rows):
        scores = lls[q * N_OPTIONS : (q + 1) * N_OPTIONS]
        options = [row[f"option_{c}"] for c in "abcd"]
        norm = [s / max(len(o), 1) for s, o in zip(scores, options, strict=True)]
        target = LETTERS.index(row["answer"])
        pred = int(np.argmax(norm))
        hits.append(float(int(np.argmax(scores)) == target))
        hits_norm.append(float(pred == target))
        preds.append(pred)
    return ClozeScore(
        acc=float(np.mean(hits)),
        acc_norm=float(np.mean(hits_norm)),
        acc_stderr=_stderr(hits),
        acc_norm_stderr=_stderr(hits_norm),
        n=len(rows),
        preds=preds,
        hits_norm=hits_norm,
    )
