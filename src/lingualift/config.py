"""Dataclass configs, read from YAML recipes with ``key=value`` overrides.

Every config in lingualift is a plain dataclass whose fields carry a docstring
(the string literal right below the field). :func:`field_docs` reads those back,
so ``lingualift <verb> --help`` and ``lingualift config <verb>`` can show them.

A recipe is a YAML mapping with the same keys; nested dataclasses are nested
mappings, and overrides use dots: ``train.lr=1e-4``.

Two conventions hold for every config:

- a field made with :func:`bookkeeping` says where outputs go or how a run is
  shown, not what it computes; :func:`settings_of` (what stage fingerprints
  cover) leaves such fields out, at every level of nesting;
- a verb's output folder is ``out_dir`` and its output file ``out``; the old
  spellings in :data:`RENAMED_KEYS` are refused with the new name.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import math
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lingualift.atomic import atomic_write_text
from lingualift.errors import LingualiftError
from lingualift.textio import read_text

C = TypeVar("C")

BOOKKEEPING = "lingualift.bookkeeping"
"""The ``dataclasses.field`` metadata key that :func:`bookkeeping` sets."""

RENAMED_KEYS: dict[str, tuple[str, ...]] = {
    "output_dir": ("out_dir",),
    "output": ("out", "out_dir"),
    "out": ("out_dir",),
}
"""Old spellings of the output keys -> their names now, in order of preference: a verb's output
folder is ``out_dir``, its output file ``out``. :func:`from_dict` refuses an old spelling with the
first new name the config has."""


def bookkeeping(
    default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING
) -> Any:
    """A dataclass field that does not change what a run computes, kept out of fingerprints.

    For keys that say where outputs go (``out_dir``, ``store``), how a run is shown or
    paced (``report_to``, ``follow``), which units of a job exist when each unit's name
    already says it (an experiment's ``seeds``), or an input a job fingerprints by its
    content elsewhere. :func:`settings_of` drops them.
    """
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={BOOKKEEPING: True}
    )


def is_bookkeeping(field: dataclasses.Field[Any]) -> bool:
    """Whether ``field`` was made with :func:`bookkeeping`."""
    return bool(field.metadata.get(BOOKKEEPING))


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Map each field of dataclass ``cls`` to the docstring written below it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only: no tag can build a Python object) with the 1.2
    core schema's booleans: only true/false, so ``lang: no`` (Norwegian) stays a string."""


_SafeLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text as plain data (1.2 booleans, see :class:`_SafeLoader`)."""
    # Built directly rather than through yaml.load, so no reader has to check which loader it got.
    loader = _SafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _Override(str):
    """A ``key=value`` value from the command line, parsed by the field's declared type."""


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(tp)


def _textual(tp: Any) -> bool:
    """Types whose command-line value is taken as written (never read as YAML)."""
    if tp in (str, Path):
        return True
    return typing.get_origin(tp) is typing.Literal and all(
        isinstance(a, str) for a in typing.get_args(tp)
    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a recipe or command-line value to the field's declared type, or say what is wrong."""
    optional = _is_optional(tp)
    tp = _unwrap_optional(tp)
    if isinstance(value, _Override):
        raw = str(value)
        if optional and raw.strip().lower() in ("", "null", "none", "~"):
            return None
        if not _textual(tp):
            try:
                value = parse_yaml(raw) if raw.strip() else raw
            except yaml.YAMLError:
                value = raw
        else:
            value = raw
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise LingualiftError(f"{where} must be a mapping of {tp.__name__} fields.")
        return from_dict(tp, value, where=where)
    origin = typing.get_origin(tp)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise LingualiftError(f"{where} must be a list, got {value!r}.")
        args = typing.get_args(tp)
        items = [_coerce(v, args[0], where) for v in value] if args else list(value)
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise LingualiftError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    if typing.get_origin(tp) is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise LingualiftError(
                f"{where} must be one of {', '.join(map(str, allowed))}; got {value!r}."
            )
        return value
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise LingualiftError(f"{where} must be true or false, got {value!r}.")
        return value
    if tp in (int, float):
        return _number(value, tp, where)
    if tp is str:
        if isinstance(value, dict | list | bool):
            raise LingualiftError(f"{where} must be text, got {value!r}.")
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def _number(value: Any, tp: type, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LingualiftError(f"{where} must be a number, got {value!r}.")
    try:
        number = float(value)
    except ValueError:
        raise LingualiftError(f"{where} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise LingualiftError(f"{where} must be a finite number, got {value!r}.")
    if tp is float:
        return number
    if not number.is_integer():
        raise LingualiftError(f"{where} must be a whole number, got {value!r}.")
    return int(number)


def _refuse_renamed(unknown: Sequence[str], fields: Sequence[str], where: str) -> None:
    """Name the new spelling of an old output key (``output_dir`` -> ``out_dir``)."""
    for old in unknown:
        new = next((n for n in RENAMED_KEYS.get(old, ()) if n in fields), None)
        if new is not None:
            raise LingualiftError(
                f"{old} is now {new} (every verb names its output folder out_dir and its output "
                f"file out); rename the key in {where}."
            )


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by name."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        _refuse_renamed(unknown, list(fields), where)
        nested = {
            sub.name: f"{name}.{sub.name}"
            for name in fields
            if dataclasses.is_dataclass(inner := _unwrap_optional(hints[name]))
            for sub in dataclasses.fields(inner)
        }
        hints_text = [nested[k] for k in unknown if k in nested]
        meant = f" (did you mean {', '.join(hints_text)}?)" if hints_text else ""
        raise LingualiftError(
            f"Unknown key {', '.join(repr(k) for k in unknown)} in {where}{meant}; "
            f"valid keys are: {', '.join(fields)}."
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def _plain(value: Any) -> Any:
    """``value`` as YAML/JSON-safe data: paths as text, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(config: object) -> dict[str, Any]:
    """A plain, YAML-safe mapping of a dataclass config (every field)."""
    return {k: _plain(v) for k, v in dataclasses.asdict(config).items()}  # type: ignore[call-overload]


def settings_of(config: object) -> dict[str, Any]:
    """What a config says about what is computed: :func:`to_dict` without :func:`bookkeeping`
    fields, at every level of nesting. Stage fingerprints are taken over this."""

    def settings(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: settings(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if not is_bookkeeping(f)
            }
        if isinstance(value, tuple | list):
            return [settings(v) for v in value]
        if isinstance(value, dict):
            return {k: settings(v) for k, v in value.items()}
        return _plain(value)

    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"settings_of takes a dataclass instance, got {type(config).__name__}")
    return settings(config)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a nested mapping.

    Values stay text until :func:`from_dict` converts them by each field's declared
    type: ``lang=no`` is the language code, ``model=embedded:`` a (bad) model spec,
    ``max_steps=1.7`` an error, ``langs=[sw,fr]`` or ``langs=sw,fr`` a list.
    """
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise LingualiftError(f"Override {item!r} is not of the form key=value.")
        value = _Override(raw)
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[leaf] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file into a mapping, with a clear error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise LingualiftError(f"Recipe {path} does not exist; pass the path of a YAML file.")
    try:
        data = parse_yaml(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise LingualiftError(f"{path}{line} is not valid YAML; fix the syntax there.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LingualiftError(f"{path} must hold a YAML mapping of config keys.")
    return data


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
) -> C:
    """Build config ``cls`` from an optional recipe plus ``key=value`` overrides; ``values``
    (e.g. a verb's positional words, taken as written) are set last."""
    data = read_yaml(path) if path else {}
    where = str(path) if path else cls.__name__
    return from_dict(cls, {**apply_overrides(data, overrides), **(values or {})}, where=where)


def save_config(config: object, path: str | Path, prefix: Mapping[str, Any] | None = None) -> None:
    """Write a config as YAML, atomically; ``prefix`` keys come first (e.g. which experiment)."""
    data = {**(prefix or {}), **to_dict(config)}
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def describe(cls: type, omit: Sequence[str] = ()) -> str:
    """Human-readable list of the fields of ``cls`` with defaults and docs (less ``omit``)."""
    docs = field_docs(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if f.name in omit:
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        lines.append(f"  {f.name} = {default}")
        if f.name in docs:
            lines.extend(f"      {line}" for line in docs[f.name].splitlines())
    return "\n".join(lines)
