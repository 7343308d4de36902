"""Which columns of a user's data hold what: one mapping for every verb.

Every verb that reads user data takes the same mapping, ``columns``: on the
command line ``columns.text=question columns.lang=language columns.id=qid``,
with ``text_field=<name>`` as the short form of ``columns.text=<name>``. A verb
with several inputs (``select``) has one mapping per input as well
(``target_fields``, ``pool_fields``, ...), of the same type.

A mapping renames source columns to lingualift's names (:meth:`Columns.apply`)
before anything else looks at a row, so readers downstream (records, training
examples, the monitor's queries) only ever see ``text``, ``lang``, ``id``, ...
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lingualift.errors import LingualiftError

ROLES = ("text", "id", "lang", "prompt", "completion", "messages", "ts")
"""lingualift's names for the columns a mapping can rename."""


@dataclasses.dataclass
class Columns:
    """Which source column holds each of lingualift's fields (and the language of untagged rows)."""

    text: str = "text"
    """Column holding the text (a query, prompt, document, verse)."""
    id: str | None = "id"
    """Column holding a unique id; when absent the row number is used."""
    lang: str | None = "lang"
    """Column holding the language code; when absent, ``default_lang`` applies."""
    default_lang: str | None = None
    """Language of every row that has no language column (or an empty one)."""
    prompt: str = "prompt"
    """Training data: column holding the prompt of a prompt/completion pair."""
    completion: str = "completion"
    """Training data: column holding the completion of a prompt/completion pair."""
    messages: str = "messages"
    """Training data: column holding a chat (a list of {role, content})."""
    ts: str = "ts"
    """Production queries: column holding the time (ISO 8601 text or seconds since the epoch)."""

    def renames(self) -> dict[str, str]:
        """``{source column: lingualift name}`` for every column that is not already so named."""
        out: dict[str, str] = {}
        for role in ROLES:
            source = getattr(self, role)
            if source and source != role:
                out[source] = role
        return out

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with mapped columns under lingualift's names.

        A mapped column replaces a column already called by that name (with
        ``columns.text=body`` a row's own ``text`` column is not the text), and a
        field mapped to None drops the column of that name (``id=None``: the
        row's ``id`` column is not its id). Other columns keep their names.
        """
        renames = self.renames()
        unmapped = {role for role in ROLES if getattr(self, role) is None}
        if not renames and not unmapped:
            return row
        shadowed = set(renames.values()) | unmapped
        out = {k: v for k, v in row.items() if k not in renames and k not in shadowed}
        for source, role in renames.items():
            if source in row:
                out[role] = row[source]
        return out


def column_hint(role: str, option: str = "columns") -> str:
    """How to map the column of ``role`` on the command line, for error messages."""
    short = " (or text_field=<column>)" if role == "text" and option == "columns" else ""
    return f"{option}.{role}=<column>{short}"


def merge_columns(
    base: Columns, override: Columns | dict[str, Any] | None, where: str = "columns"
) -> Columns:
    """``override``'s keys that differ from the defaults, on top of ``base``."""
    if override is None:
        return base
    if isinstance(override, dict):
        unknown = sorted(set(override) - {f.name for f in dataclasses.fields(Columns)})
        if unknown:
            raise LingualiftError(
                f"Unknown key {unknown[0]!r} in {where}; use one of "
                f"{', '.join(f.name for f in dataclasses.fields(Columns))}."
            )
        override = Columns(**override)
    default = Columns()
    merged = dataclasses.replace(base)
    for field in dataclasses.fields(Columns):
        value = getattr(override, field.name)
        if value != getattr(default, field.name):
            setattr(merged, field.name, value)
    return merged


def shorthand_columns(
    columns: Columns | dict[str, Any] | None, text_field: str | None, where: str = "columns"
) -> Columns:
    """``columns`` with ``text_field`` folded in as ``columns.text`` (both set differently: an error)."""
    if isinstance(columns, dict):
        columns = merge_columns(Columns(), columns, where)
    columns = columns or Columns()
    if text_field is None or text_field == columns.text:
        return columns
    if columns.text != Columns().text:
        raise LingualiftError(
            f"text_field={text_field!r} and {where}.text={columns.text!r} disagree; "
            "give one of them."
        )
    return dataclasses.replace(columns, text=text_field)
