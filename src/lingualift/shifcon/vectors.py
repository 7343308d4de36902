"""Language vectors: the mean hidden state of each language at each layer.

For language ``l`` and hidden-state index ``i`` (0 = the embeddings that enter
decoder layer 0, ``i`` = the output of decoder layer ``i - 1``, which is the
input of decoder layer ``i``; ``L`` = the output of the last layer, before the
final norm), ``v_l[i]`` is the mean over sentences of the token-mean hidden
state over non-padding tokens. The vectors are true means of raw hidden states
(the released ShifCon code averaged unit-normalised vectors), because they are
added to raw hidden states.

Alongside the means we keep, per layer, the top principal directions of each
language's centred sentence representations: the layer-area rule
(:mod:`lingualift.shifcon.area`) compares these subspaces, so it never has to
run the model again.

Everything is computed by streaming batches through the decoder stack only (the
LM head, a large share of a small model's compute, is never run).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_path
from lingualift.errors import LingualiftError, require
from lingualift.languages import normalize_language
from lingualift.models import model_signature
from lingualift.shifcon.capture import sentence_representations

FORMAT = "lingualift.shifcon.vectors/1"
VECTORS_FILE = "vectors.safetensors"


@dataclasses.dataclass
class LanguageVectors:
    """Per-language, per-layer mean hidden states (and principal subspaces)."""

    means: dict[str, Any]
    """Language code -> float32 tensor of shape ``(num_layers + 1, hidden_size)``."""
    counts: dict[str, int]
    """Language code -> number of sentences averaged."""
    tokens: dict[str, int]
    """Language code -> number of non-padding tokens seen."""
    base_model: str
    """The model spec the vectors were computed on (embedded name, hub id or folder)."""
    model_type: str
    """``config.model_type`` of that model (gemma3_text, llama, ...)."""
    num_layers: int
    """Number of decoder layers; the tensors hold ``num_layers + 1`` rows."""
    hidden_size: int
    """Width of the hidden states."""
    vocab_size: int = 0
    """Vocabulary size of the model (a second guard against a different base model)."""
    bases: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Language code -> ``(num_layers + 1, k, hidden_size)`` orthonormal principal directions."""
    spectra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Language code -> ``(num_layers + 1, k)`` variance along those directions."""
    source: str = ""
    """Where the sentences came from (corpus split or file), for the record."""

    # ---- access -------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        return sorted(self.means)

    def vector(self, lang: str, index: int | None = None):
        """``v_lang`` (all layers) or ``v_lang[index]``, with a clear error when missing."""
        code = normalize_language(lang)
        if code not in self.means:
            raise LingualiftError(
                f"No language vector for {code!r}; these vectors cover "
                f"{', '.join(self.languages)}, so compute vectors for {code!r} first."
            )
        vectors = self.means[code]
        return vectors if index is None else vectors[index]

    def check_model(self, model: Any) -> None:
        """Refuse a model whose shape differs from the one these vectors came from."""
        signature = model_signature(model)
        mine = {
            "model_type": self.model_type,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
        }
        for key, value in mine.items():
            if key == "vocab_size" and not value:
                continue
            if signature[key] != value:
                raise LingualiftError(
                    f"These language vectors were computed on {self.base_model} "
                    f"({key}={value}) but the model has {key}={signature[key]}; "
                    "recompute the vectors on this model with 'lingualift shifcon vectors'."
                )

    def subset(self, langs: Iterable[str]) -> LanguageVectors:
        codes = [normalize_language(lang) for lang in langs]
        for code in codes:
            self.vector(code)  # raises when missing
        pick = lambda d: {c: d[c] for c in codes if c in d}  # noqa: E731
        return dataclasses.replace(
            self,
            means=pick(self.means),
            counts=pick(self.counts),
            tokens=pick(self.tokens),
            bases=pick(self.bases),
            spectra=pick(self.spectra),
        )

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "base_model": self.base_model,
            "model_type": self.model_type,
            "num_layers": str(self.num_layers),
            "hidden_size": str(self.hidden_size),
            "vocab_size": str(self.vocab_size),
            "languages": ",".join(self.languages),
            "counts": json.dumps(self.counts, sort_keys=True),
            "tokens": json.dumps(self.tokens, sort_keys=True),
            "source": self.source,
            "index_convention": "0=embeddings; i=output of decoder layer i-1 = input of layer i",
        }

    # ---- persistence --------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one safetensors file (atomic) with the metadata in its header."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / VECTORS_FILE
        tensors = {}
        for lang in self.languages:
            tensors[f"{lang}.mean"] = self.means[lang].float().contiguous()
            if lang in self.bases:
                tensors[f"{lang}.basis"] = self.bases[lang].float().contiguous()
                tensors[f"{lang}.spectrum"] = self.spectra[lang].float().contiguous()
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=self.metadata())
        return path

    @classmethod
    def load(cls, path: str | Path) -> LanguageVectors:
        """Read vectors written by :meth:`save` (a file or the folder holding it)."""
        from safetensors import safe_open

        path = Path(path)
        if path.is_dir():
            path = path / VECTORS_FILE
        require(
            path.is_file(),
            f"{path} does not exist; compute language vectors with 'lingualift shifcon vectors'.",
        )
        try:
            handle = safe_open(str(path), framework="pt")
        except Exception:
            raise LingualiftError(
                f"{path} is not a safetensors file; recompute it with 'lingualift shifcon vectors'."
            ) from None
        with handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                raise LingualiftError(
                    f"{path} holds no lingualift language vectors; "
                    "recompute it with 'lingualift shifcon vectors'."
                )
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        means, bases, spectra = {}, {}, {}
        for key, tensor in tensors.items():
            lang, _, kind = key.rpartition(".")
            {"mean": means, "basis": bases, "spectrum": spectra}[kind][lang] = tensor
        return cls(
            means=means,
            counts={k: int(v) for k, v in json.loads(meta.get("counts", "{}")).items()},
            tokens={k: int(v) for k, v in json.loads(meta.get("tokens", "{}")).items()},
            base_model=meta.get("base_model", ""),
            model_type=meta.get("model_type", ""),
            num_layers=int(meta["num_layers"]),
            hidden_size=int(meta["hidden_size"]),
            vocab_size=int(meta.get("vocab_size", 0) or 0),
            bases=bases,
            spectra=spectra,
            source=meta.get("source", ""),
        )


def compute_language_vectors(
    model: Any,
    tokenizer: Any,
    texts: Mapping[str, Sequence[str]],
    base_model: str,
    batch_size: int = 16,
    max_length: int = 128,
    subspace_rank: int = 16,
    source: str = "",
    progress: bool = True,
) -> LanguageVectors:
    """Language vectors (and principal subspaces) of ``model`` over ``texts`` per language.

    Sentences are streamed in batches; means accumulate in float64. With
    ``subspace_rank > 0`` each language's sentence representations are kept
    (``n x (L+1) x H`` floats, one language at a time) to take the top
    ``subspace_rank`` principal directions per layer by SVD.
    """
    import torch
    from tqdm.auto import tqdm

    require(texts, "No texts given; pass at least one language with sentences.")
    require(batch_size >= 1, f"batch_size must be at least 1, got {batch_size}.")
    require(max_length >= 1, f"max_length must be at least 1, got {max_length}.")
    signature = model_signature(model)
    n = signature["num_layers"]
    indices = list(range(n + 1))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    means, counts, tokens, bases, spectra = {}, {}, {}, {}, {}
    was_training = model.training
    model.eval()
    for lang, sentences in texts.items():
        code = normalize_language(lang)
        sentences = [s for s in sentences if s and s.strip()]
        require(sentences, f"No non-empty sentences for {code!r}; give it some text.")
        if subspace_rank:
            require(
                len(sentences) > subspace_rank,
                f"{code!r} has {len(sentences)} sentences but subspace_rank is {subspace_rank}; "
                "give more sentences or lower subspace_rank.",
            )
        total = torch.zeros(n + 1, signature["hidden_size"], dtype=torch.float64)
        kept = []
        seen_tokens = 0
        steps = range(0, len(sentences), batch_size)
        bar = tqdm(steps, desc=f"vectors {code}", unit="batch", disable=not progress, leave=False)
        with torch.inference_mode():
            for start in bar:
                reps, n_tok = sentence_representations(
                    model, tokenizer, sentences[start : start + batch_size], max_length, indices
                )
                reps = reps.cpu()
                total += reps.double().sum(dim=0)
                seen_tokens += n_tok
                if subspace_rank:
                    kept.append(reps)
        means[code] = (total / len(sentences)).float()
        counts[code] = len(sentences)
        tokens[code] = seen_tokens
        if subspace_rank:
            bases[code], spectra[code] = principal_subspaces(torch.cat(kept), subspace_rank)
    model.train(was_training)
    return LanguageVectors(
        means=means,
        counts=counts,
        tokens=tokens,
        base_model=base_model,
        bases=bases,
        spectra=spectra,
        source=source,
        **signature,
    )


def principal_subspaces(reps: Any, rank: int):
    """Top ``rank`` principal directions per layer of ``reps`` (``n x layers x H``)."""
    import torch

    centred = (reps - reps.mean(dim=0, keepdim=True)).transpose(0, 1).double()  # layers x n x H
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    variance = singular[:, :rank] ** 2 / max(reps.shape[0] - 1, 1)
    return vh[:, :rank, :].float(), variance.float()


def merge_vectors(parts: Sequence[LanguageVectors], source: str = "") -> LanguageVectors:
    """One :class:`LanguageVectors` from per-language parts of the same model."""
    require(parts, "No language vectors to merge.")
    first = parts[0]
    for part in parts[1:]:
        require(
            (part.base_model, part.num_layers, part.hidden_size)
            == (first.base_model, first.num_layers, first.hidden_size),
            "Cannot merge language vectors of different models; recompute them on one model.",
        )
    merged = dataclasses.replace(
        first, means={}, counts={}, tokens={}, bases={}, spectra={}, source=source
    )
    for part in parts:
        for name in ("means", "counts", "tokens", "bases", "spectra"):
            getattr(merged, name).update(getattr(part, name))
    return merged
