"""Multiple-choice benchmarks: Global-MMLU (4 options) and MMLU-ProX (10 options).

Questions load from the hub (``source="hub"``, needs the ``datasets`` package
and a connection) or from local Parquet/CSV/JSONL files with the benchmark's
columns. Scoring is either the log-likelihood of each answer letter after the
prompt (zero- or few-shot, shots from the dev split) or generative
chain-of-thought, with the answer read by a per-language pattern such as
"Jibu ni (B)".
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from lingualift.data import iter_rows
from lingualift.data.formats import is_data_file, split_suffixes
from lingualift.data.readers import is_saved_dataset
from lingualift.errors import LingualiftError, require
from lingualift.evaluation.scoring import ApplyFn, LoglikelihoodScorer
from lingualift.languages import normalize_language

LETTERS = "ABCDEFGHIJ"


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """Column layout and hub location of one multiple-choice benchmark."""

    name: str
    n_options: int
    hub_id: str
    option_columns: tuple[str, ...]
    alt_option_columns: tuple[str, ...] = ()
    """Other spellings of the option columns (MMLU-ProX on the hub uses option_0..option_9)."""
    subject_columns: tuple[str, ...] = ("subject",)
    category_columns: tuple[str, ...] = ("subject_category",)
    dev_split: str = "dev"

    @property
    def letters(self) -> str:
        return LETTERS[: self.n_options]


BENCHMARKS: dict[str, Benchmark] = {
    "global-mmlu": Benchmark(
        name="global-mmlu",
        n_options=4,
        hub_id="CohereForAI/Global-MMLU",
        option_columns=tuple(f"option_{c}" for c in "abcd"),
    ),
    "mmlu-prox": Benchmark(
        name="mmlu-prox",
        n_options=10,
        hub_id="li-lab/MMLU-ProX",
        option_columns=tuple(f"option_{c}" for c in "abcdefghij"),
        alt_option_columns=tuple(f"option_{i}" for i in range(10)),
        subject_columns=("subject", "category"),
        category_columns=("subject_category", "src", "category"),
        dev_split="validation",
    ),
}

LANG_COLUMNS = ("lang", "language")


@dataclasses.dataclass
class MCQItem:
    """One multiple-choice question."""

    id: str
    lang: str
    question: str
    options: list[str]
    answer: int
    """Index of the right option (0 = A)."""
    subject: str = ""
    subject_category: str = ""


def get_benchmark(name: str) -> Benchmark:
    key = name.lower().replace("_", "-")
    if key not in BENCHMARKS:
        raise LingualiftError(f"Unknown benchmark {name!r}; use one of {', '.join(BENCHMARKS)}.")
    return BENCHMARKS[key]


# -- loading -------------------------------------------------------------------
def _parse_answer(value: Any, n_options: int, where: str) -> int:
    letters = LETTERS[:n_options]
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        index = int(value)
    else:
        text = str(value).strip().strip("().").upper()
        if len(text) == 1 and text in LETTERS:
            index = LETTERS.index(text)
        elif text.isdigit():
            index = int(text)
        else:
            raise LingualiftError(
                f"{where}: answer {value!r} is not one of the option letters "
                f"{letters[0]}-{letters[-1]}; fix that row."
            )
    if not 0 <= index < n_options:
        shown = LETTERS[index] if 0 <= index < len(LETTERS) else index
        raise LingualiftError(
            f"{where}: answer {shown!r} is outside the options {letters[0]}-{letters[-1]}; "
            "fix that row."
        )
    return index


def _first_present(row: dict[str, Any], names: Iterable[str]) -> str | None:
    return next((n for n in names if n in row), None)


def _item_from_row(
    row: dict[str, Any], bench: Benchmark, where: str, lang: str | None, row_no: int
) -> MCQItem:
    option_cols = bench.option_columns
    alt = bench.alt_option_columns
    if alt and not all(c in row for c in option_cols) and all(c in row for c in alt):
        option_cols = bench.alt_option_columns
    required = ["question", *option_cols, "answer"]
    subject_col = _first_present(row, bench.subject_columns)
    missing = [c for c in required if c not in row]
    if subject_col is None:
        missing.append(bench.subject_columns[0])
    if missing:
        raise LingualiftError(
            f"{where} is missing column(s) {', '.join(missing)}; a {bench.name} file needs "
            f"question, {option_cols[0]}..{option_cols[-1]}, answer and subject."
        )
    options = ["" if row[c] is None else str(row[c]) for c in option_cols]
    # MMLU-Pro questions may have fewer than ten options; trailing blanks are absent ones.
    while options and not options[-1].strip():
        options.pop()
    answer_value = row["answer"]
    if isinstance(answer_value, str) and answer_value.strip() == "" and "answer_index" in row:
        answer_value = row["answer_index"]
    answer = _parse_answer(answer_value, bench.n_options, f"{where} row {row_no}")
    if answer >= len(options):
        raise LingualiftError(
            f"{where} row {row_no}: answer {LETTERS[answer]!r} points at an empty option; "
            "fix that row."
        )
    row_lang = row.get(_first_present(row, LANG_COLUMNS) or "") or lang
    require(
        row_lang,
        f"{where} has no language column (lang or language); pass langs= with one language "
        "or add the column.",
    )
    category_col = _first_present(row, bench.category_columns)
    return MCQItem(
        id=str(row.get("sample_id") or row.get("question_id") or row.get("id") or row_no),
        lang=normalize_language(str(row_lang)),
        question=str(row["question"]),
        options=options,
        answer=answer,
        subject=str(row[subject_col] or ""),
        subject_category=str(row.get(category_col) or "") if category_col else "",
    )


def _files_for(source: Path, split: str) -> list[tuple[Path, str | None]]:
    """Files of ``split`` in a folder, with the language their name gives (if any).

    Accepted layouts: ``<lang>/<split>.<ext>``, ``<split>/<lang>.<ext>``,
    ``<lang>_<split>.<ext>`` / ``<split>_<lang>.<ext>``, or ``<split>.<ext>``
    with a language column; ``<ext>`` is any data file the one reader takes
    (``.jsonl.gz``, ``.parquet``, ...).
    """
    found: list[tuple[Path, str | None]] = []
    for path in sorted(source.rglob("*")):
        if not path.is_file() or not is_data_file(path):
            continue
        rel = path.relative_to(source)
        if split_suffixes(path)[1]:  # the compression suffix, then the format's
            rel = rel.with_suffix("")
        rel = rel.with_suffix("")
        parts = [p for part in rel.parts for p in re.split(r"[_\-.]", part)]
        if split not in parts:
            continue
        others = [p for p in parts if p != split]
        lang = None
        if len(others) == 1:
            try:
                lang = normalize_language(others[0])
            except LingualiftError:
                lang = None
        found.append((path, lang))
    return found


def load_mcq(
    source: str | Path,
    benchmark: str = "global-mmlu",
    langs: Sequence[str] | None = None,
    split: str = "test",
    limit: int | None = None,
    subjects: Sequence[str] | None = None,
) -> list[MCQItem]:
    """Questions of ``benchmark`` from ``source``, restricted to ``langs``.

    ``source`` is ``"hub"`` (one hub config per language), an ``hf:`` dataset
    spec or a saved dataset folder, a file in any format the one reader takes
    (language from its ``lang``/``language`` column, or the single language in
    ``langs``), or a folder of per-language/per-split files.
    ``limit`` caps questions per language.
    """
    bench = get_benchmark(benchmark)
    wanted = [normalize_language(x) for x in langs] if langs else None
    default_lang = wanted[0] if wanted and len(wanted) == 1 else None
    rows: list[tuple[str, int, dict[str, Any], str | None]] = []
    spec = str(source)
    if spec == "hub":
        require(wanted, f"Loading {bench.name} from the hub needs langs, e.g. langs=sw,yo.")
        for lang in wanted:
            hub_split = split if split != "dev" else bench.dev_split
            for name, row_no, row in iter_rows(f"hf:{bench.hub_id}:{lang}@{hub_split}"):
                rows.append((name, row_no, row, lang))
    elif spec.startswith("hf:") or Path(spec).is_file() or is_saved_dataset(Path(spec)):
        rows.extend((n, i, r, default_lang) for n, i, r in iter_rows(spec))
    elif Path(spec).is_dir():
        files = _files_for(Path(spec), split)
        require(
            files,
            f"No {split} files in {spec}; name them like sw_{split}.parquet or sw/{split}.csv.",
        )
        named = sorted({lang for _, lang in files if lang})
        for lang in wanted or []:
            if len(named) == len(files) and lang not in named:
                raise LingualiftError(
                    f"No {split} questions in language {lang!r} in {spec} (it has: "
                    f"{', '.join(named)}); change langs or the data."
                )
        for path, lang in files:
            if wanted and lang and lang not in wanted:
                continue
            rows.extend((n, i, r, lang or default_lang) for n, i, r in iter_rows(path))
    else:
        raise LingualiftError(
            f"{spec} is neither a file, a folder nor 'hub'; pass a Parquet/CSV/JSONL path."
        )
    items = [_item_from_row(r, bench, name, lang, i) for name, i, r, lang in rows]
    require(items, f"{spec} holds no {split} questions; check the path and split.")
    if subjects:
        keep = set(subjects)
        items = [it for it in items if it.subject in keep or it.subject_category in keep]
    present = sorted({it.lang for it in items})
    if wanted:
        for lang in wanted:
            require(
                lang in present,
                f"No {split} questions in language {lang!r} in {spec} (it has: "
                f"{', '.join(present) or 'none'}); change langs or the data.",
            )
        items = [it for it in items if it.lang in wanted]
    if limit is not None:
        counts: dict[str, int] = defaultdict(int)
        kept = []
        for item in items:
            if counts[item.lang] < limit:
                counts[item.lang] += 1
                kept.append(item)
        items = kept
    return items


# -- prompts -------------------------------------------------------------------
def format_question(item: MCQItem, answer: bool = False) -> str:
    lines = [item.question.strip()]
    lines += [f"{LETTERS[i]}. {opt.strip()}" for i, opt in enumerate(item.options)]
    text = "\n".join(lines) + "\nAnswer:"
    return text + (f" {LETTERS[item.answer]}\n\n" if answer else "")


def _subject_name(item: MCQItem) -> str:
    return (item.subject or "general knowledge").replace("_", " ")


def pick_shots(item: MCQItem, pool: Sequence[MCQItem], k: int) -> list[MCQItem]:
    """Up to ``k`` dev questions in ``item``'s language, same subject first."""
    if k <= 0:
        return []
    same_lang = [p for p in pool if p.lang == item.lang and p.id != item.id]
    same_subject = [p for p in same_lang if p.subject == item.subject]
    others = [p for p in same_lang if p.subject != item.subject]
    return (same_subject + others)[:k]


def build_prompt(item: MCQItem, shots: Sequence[MCQItem] = ()) -> str:
    """The MMLU prompt of lm-eval's ``mmlu``/``global_mmlu`` tasks, with optional shots."""
    header = f"The following are multiple choice questions (with answers) about {_subject_name(item)}.\n\n"
    return header + "".join(format_question(s, answer=True) for s in shots) + format_question(item)


# Chain-of-thought: the phrase a model is asked to end with, per language.
ANSWER_PHRASES: dict[str, str] = {
    "en": "The answer is",
    "sw": "Jibu ni",
    "fr": "La réponse est",
    "de": "Die Antwort ist",
    "es": "La respuesta es",
    "pt": "A resposta é",
    "it": "La risposta è",
    "ru": "Ответ:",
    "uk": "Відповідь:",
    "zh": "答案是",
    "ja": "答えは",
    "ko": "정답은",
    "ar": "الإجابة هي",
    "hi": "उत्तर है",
    "bn": "উত্তর হল",
    "id": "Jawabannya adalah",
    "vi": "Đáp án là",
    "tr": "Cevap",
    "yo": "Ìdáhùn ni",
}
COT_INSTRUCTION = (
    "Answer the following multiple choice question. Think step by step, then finish "
    'with "{phrase} (X)" where X is the letter of the right option.\n\n'
)


def build_cot_prompt(item: MCQItem, shots: Sequence[MCQItem] = ()) -> str:
    phrase = ANSWER_PHRASES.get(item.lang, ANSWER_PHRASES["en"])
    body = "".join(
        format_question(s)[: -len("Answer:")] + f"{phrase} ({LETTERS[s.answer]})\n\n" for s in shots
    )
    return COT_INSTRUCTION.format(phrase=phrase) + body + format_question(item)[: -len("Answer:")]


def extract_answer(text: str, lang: str, n_options: int) -> int | None:
    """The option a chain-of-thought answer chose, by the language's phrase, else English."""
    letters = LETTERS[:n_options]
    for phrase in dict.fromkeys([ANSWER_PHRASES.get(lang, ""), ANSWER_PHRASES["en"]]):
        if not phrase:
            continue
        pattern = re.escape(phrase.rstrip(":")) + rf"\s*:?\s*\(?\**([{letters}])\b"
        matches = re.findall(pattern, text, flags=re.IGNORECASE)
        if matches:
            return letters.index(matches[-1].upper())
    # Fall back to the last "(X)" the model wrote.
    matches = re.findall(rf"\(([{letters}])\)", text)
    return letters.index(matches[-1]) if matches else None


# -- evaluation ----------------------------------------------------------------
@dataclasses.dataclass
class MCQSample:
    """One scored question, as it goes into the per-sample log."""

    id: str
    lang: str
    subject: str
    subject_category: str
    target: int
    pred: int | None
    correct: bool
    loglikelihoods: list[float] | None = None
    prompt: str | None = None
    generation: str | None = None

    @classmethod
    def scored(cls, item: MCQItem, pred: int | None, **log: Any) -> MCQSample:
        """The sample for ``item`` answered ``pred`` (None: no answer found)."""
        return cls(
            id=item.id,
            lang=item.lang,
            subject=item.subject,
            subject_category=item.subject_category,
            target=item.answer,
            pred=pred,
            correct=pred == item.answer,
            **log,
        )


def evaluate_mcq(
    model: Any,
    tokenizer: Any,
    items: Sequence[MCQItem],
    shots_pool: Sequence[MCQItem] = (),
    num_fewshot: int = 0,
    mode: Literal["loglikelihood", "cot"] = "loglikelihood",
    batch_size: int = 16,
    apply: ApplyFn | None = None,
    max_new_tokens: int = 256,
    keep_prompts: bool = False,
    progress: bool = True,
) -> list[MCQSample]:
    """Score every question; returns one :class:`MCQSample` per item, in order."""
    require(items, "No questions to evaluate; check the data source and langs.")
    if num_fewshot > 0:
        require(
            shots_pool,
            f"num_fewshot={num_fewshot} needs dev questions; pass the dev split or use 0.",
        )
    shots = [pick_shots(item, shots_pool, num_fewshot) for item in items]
    if mode == "cot":
        return _evaluate_cot(
            model, tokenizer, items, shots, batch_size, apply, max_new_tokens, progress
        )
    if mode != "loglikelihood":
        raise LingualiftError(f"Unknown mode {mode!r}; use loglikelihood or cot.")
    prompts = [build_prompt(item, s) for item, s in zip(items, shots, strict=True)]
    pairs, langs, owners = [], [], []
    for index, (item, prompt) in enumerate(zip(items, prompts, strict=True)):
        for letter in LETTERS[: len(item.options)]:
            pairs.append((prompt, f" {letter}"))
            langs.append(item.lang)
            owners.append(index)
    scorer = LoglikelihoodScorer(model, tokenizer, batch_size=batch_size, apply=apply)
    scores = scorer.loglikelihood(pairs, langs if apply else None, progress=progress)
    per_item: list[list[float]] = [[] for _ in items]
    for owner, (logprob, _) in zip(owners, scores, strict=True):
        per_item[owner].append(logprob)
    samples = []
    for item, prompt, lls in zip(items, prompts, per_item, strict=True):
        pred = max(range(len(lls)), key=lls.__getitem__)
        samples.append(
            MCQSample.scored(
                item, pred, loglikelihoods=lls, prompt=prompt if keep_prompts else None
            )
        )
    return samples


def _evaluate_cot(model, tokenizer, items, shots, batch_size, apply, max_new_tokens, progress):
    from lingualift.generation import generate_texts

    prompts = [build_cot_prompt(item, s) for item, s in zip(items, shots, strict=True)]
    # A model that starts the next question has finished this one.
    completions = generate_texts(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop=["\n\n\n"],
        context=language_context(apply, [it.lang for it in items]),
        progress=progress,
    )
    samples = []
    for item, prompt, completion in zip(items, prompts, completions, strict=True):
        text = completion.text
        pred = extract_answer(text, item.lang, len(item.options))
        samples.append(MCQSample.scored(item, pred, prompt=prompt, generation=text))
    return samples


def language_context(apply: ApplyFn | None, langs: Sequence[str]):
    """A :func:`~lingualift.generation.generate_texts` context applying ``apply`` per batch."""
    if apply is None:
        return None
    return lambda rows: apply([langs[i] for i in rows])
