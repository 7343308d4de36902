"""The :class:`ShifCon` object: language vectors plus a layer area, saved as a folder.

A ShifCon folder holds ``vectors.safetensors`` (see
:mod:`lingualift.shifcon.vectors`) and ``shifcon.json`` (base model, layer area
``a``/``b``, dominant language, and the layer curve when it was chosen by
:func:`lingualift.shifcon.area.choose_area`). ``ShifCon.apply(model, langs)``
is the one entry point for inference, evaluation and training::

    shifcon = ShifCon.load("runs/gemma-shifcon")
    with shifcon.apply(model, ["sw", "en", "fr"]):   # one code per batch row
        logits = model(**batch).logits
    with shifcon.apply(model, "sw"):                 # one code for the whole batch
        out = model.generate(**batch, max_new_tokens=32)
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_dir
from lingualift.errors import LingualiftError, require
from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.shifcon.hooks import shift_hooks
from lingualift.shifcon.vectors import VECTORS_FILE, LanguageVectors

CONFIG_FILE = "shifcon.json"
FORMAT = "lingualift.shifcon/1"


class ShifCon:
    """Shift non-dominant rows into the dominant subspace between layers ``a`` and ``b``."""

    def __init__(
        self,
        vectors: LanguageVectors,
        a: int,
        b: int,
        dominant: str = DOMINANT_LANGUAGE,
        curve: dict[str, Any] | None = None,
    ) -> None:
        self.vectors = vectors
        self.dominant = normalize_language(dominant)
        self.a, self.b = _check_area(a, b, vectors.num_layers)
        if self.dominant not in vectors.means:
            raise LingualiftError(
                f"The vectors have no {self.dominant!r} (dominant language) vector; "
                f"recompute them including {self.dominant!r}."
            )
        self.curve = curve

    @classmethod
    def from_vectors(
        cls, vectors: LanguageVectors, a: int, b: int, dominant: str = DOMINANT_LANGUAGE
    ) -> ShifCon:
        return cls(vectors, a, b, dominant)

    @classmethod
    def build(
        cls,
        model: Any,
        tokenizer: Any,
        texts: dict[str, list[str]],
        folder: str | Path,
        *,
        base_spec: str,
        batch_size: int = 16,
        max_length: int = 128,
        subspace_rank: int = 16,
        source: str = "",
        progress: bool = True,
    ) -> ShifCon:
        """Vectors of ``texts`` (per language), the curve's layer area, saved with ``layers.png``.

        The one-call form of ``lingualift shifcon vectors`` + ``layers``: computes the
        language vectors and principal subspaces, chooses the area by the documented
        rule (:func:`lingualift.shifcon.area.choose_area`), saves the ShifCon folder and
        draws the distance curve into it.
        """
        from lingualift.shifcon.area import choose_area, plot_curve
        from lingualift.shifcon.vectors import compute_language_vectors

        vectors = compute_language_vectors(
            model, tokenizer, texts, base_model=base_spec, batch_size=batch_size,
            max_length=max_length, subspace_rank=subspace_rank, source=source, progress=progress,
        )  # fmt: skip
        a, b, record = choose_area(vectors)
        shifcon = cls(vectors, a, b, curve=record)
        shifcon.save(folder)
        plot_curve(record, Path(folder) / "layers.png", title=f"{base_spec}: distance to English")
        return shifcon

    # ---- properties ---------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        return self.vectors.languages

    @property
    def base_model(self) -> str:
        return self.vectors.base_model

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": FORMAT,
            "base_model": self.vectors.base_model,
            "model_type": self.vectors.model_type,
            "num_layers": self.vectors.num_layers,
            "hidden_size": self.vectors.hidden_size,
            "a": self.a,
            "b": self.b,
            "dominant": self.dominant,
            "languages": self.languages,
            "vectors": VECTORS_FILE,
        }
        if self.curve is not None:
            data["curve"] = self.curve
        return data

    # ---- persistence --------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write ``vectors.safetensors`` and ``shifcon.json`` to ``path`` in one atomic rename.

        Other files already in the folder (a plot, an export) are carried over.
        """
        path = Path(path)
        with atomic_dir(path, overwrite=overwrite) as tmp:
            if path.is_dir():
                for item in path.iterdir():
                    if item.name not in (VECTORS_FILE, CONFIG_FILE) and not item.name.startswith(
                        "."
                    ):
                        copy = shutil.copytree if item.is_dir() else shutil.copy2
                        copy(item, tmp / item.name)
            self.vectors.save(tmp / VECTORS_FILE)
            (tmp / CONFIG_FILE).write_text(
                json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ShifCon:
        """Read a folder written by :meth:`save` (or by ``lingualift shifcon layers``)."""
        path = Path(path)
        config_path = path / CONFIG_FILE
        require(
            config_path.is_file(),
            f"{path} holds no {CONFIG_FILE}; pick the layer area with 'lingualift shifcon layers' "
            "or pass a folder written by ShifCon.save.",
        )
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise LingualiftError(
                f"{config_path} is not valid JSON; rewrite it with ShifCon.save."
            ) from None
        require(
            isinstance(config, dict) and config.get("format") == FORMAT,
            f"{config_path} is not a lingualift ShifCon config; rewrite it with ShifCon.save.",
        )
        vectors = LanguageVectors.load(path / config.get("vectors", VECTORS_FILE))
        if config.get("base_model") and config["base_model"] != vectors.base_model:
            raise LingualiftError(
                f"{config_path} names base model {config['base_model']} but its vectors come from "
                f"{vectors.base_model}; recompute the vectors or fix the folder."
            )
        if int(config.get("num_layers", vectors.num_layers)) != vectors.num_layers:
            raise LingualiftError(
                f"{config_path} is for {config['num_layers']} layers but its vectors have "
                f"{vectors.num_layers}; recompute the vectors or fix the folder."
            )
        return cls(
            vectors,
            int(config["a"]),
            int(config["b"]),
            config.get("dominant", DOMINANT_LANGUAGE),
            config.get("curve"),
        )

    # ---- shifting -----------------------------------------------------------
    def deltas(self, langs: str | Sequence[str]):
        """The deltas added at layers ``a`` and ``b``, or ``None`` when no row is shifted.

        One language gives ``(H,)`` deltas; a list gives ``(B, H)`` deltas whose
        dominant-language rows are zero.
        """
        import torch

        single = isinstance(langs, str)
        codes = [langs] if single else list(langs)
        require(codes, "No languages given; pass one code for the batch or one per row.")
        codes = [normalize_language(c) for c in codes]
        hidden = self.vectors.hidden_size
        toward = torch.zeros(len(codes), hidden)
        back = torch.zeros(len(codes), hidden)
        v_dom = self.vectors.vector(self.dominant)
        for row, code in enumerate(codes):
            if code == self.dominant:
                continue
            v_l = self.vectors.vector(code)
            toward[row] = v_dom[self.a] - v_l[self.a]
            back[row] = v_l[self.b] - v_dom[self.b]
        if all(code == self.dominant for code in codes):
            return None
        if single or len(set(codes)) == 1:
            return toward[0], back[0]
        return toward, back

    @contextlib.contextmanager
    def apply(self, model: Any, langs: str | Sequence[str]) -> Iterator[Any]:
        """Shift rows of non-dominant languages while the context is open.

        ``langs`` is one language code for the whole batch or a list with one
        code per batch row (beam search or ``num_return_sequences`` repeats are
        handled). Rows in the dominant language are untouched. Works around
        ``forward``, ``generate`` (with or without a KV cache) and training.
        """
        self.vectors.check_model(model)
        deltas = self.deltas(langs)
        if deltas is None:  # nothing to shift: register nothing
            yield model
            return
        toward, back = deltas
        with shift_hooks(model, {self.a: toward, self.b: back}):
            yield model

    def __repr__(self) -> str:
        return (
            f"ShifCon(base_model={self.base_model!r}, a={self.a}, b={self.b}, "
            f"dominant={self.dominant!r}, languages={self.languages})"
        )


def _check_area(a: Any, b: Any, num_layers: int) -> tuple[int, int]:
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LingualiftError(f"Layer {name} must be an integer, got {value!r}.")
    if a >= b:
        raise LingualiftError(
            f"The layer area needs a < b (shift toward at a, back at b); got a={a}, b={b}."
        )
    if a < 0 or b > num_layers - 1:
        raise LingualiftError(
            f"Layers a={a}, b={b} are out of range; this model has decoder layers "
            f"0..{num_layers - 1}, so use 0 <= a < b <= {num_layers - 1}."
        )
    return a, b
