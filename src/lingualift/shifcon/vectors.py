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

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_path
from lingualift.errors import LingualiftError, require
from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.models import decoder_layers, model_signature

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


class _StopForward(Exception):
    """Raised by a hook once the last wanted hidden state is captured."""


@contextlib.contextmanager
def capture_states(model: Any, indices: Sequence[int], stop: bool = False) -> Iterator[dict]:
    """Record hidden states at ``indices`` (0 = embeddings .. L = last layer output).

    Index ``i >= 1`` is read from the output of decoder layer ``i - 1``, index
    0 from the input of layer 0 (a pre-hook placed first), so a shift hook at
    the input of layer ``i`` never changes what is recorded at index ``i``:
    the recorded state is the one the layer area sees before the shift back.
    With ``stop`` the forward pass ends right after the deepest index (the
    caller catches :class:`_StopForward`; :func:`layer_states` does).
    """
    layers = decoder_layers(model)
    n = len(layers)
    wanted = sorted(set(indices))
    require(
        wanted and wanted[0] >= 0 and wanted[-1] <= n,
        f"Hidden-state indices must lie in 0..{n}; got {list(indices)}.",
    )
    states: dict[int, Any] = {}
    handles = []

    def pre_hook(module, args, kwargs):
        states[0] = args[0] if args else kwargs["hidden_states"]
        if stop and wanted[-1] == 0:
            raise _StopForward

    def post_hook(index):
        def hook(module, args, output):
            states[index] = output[0] if isinstance(output, tuple) else output
            if stop and index == wanted[-1]:
                raise _StopForward

        return hook

    try:
        for index in wanted:
            if index == 0:
                handles.append(
                    layers[0].register_forward_pre_hook(pre_hook, with_kwargs=True, prepend=True)
                )
            else:
                handles.append(layers[index - 1].register_forward_hook(post_hook(index)))
        yield states
    finally:
        for handle in handles:
            handle.remove()


def layer_states(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    indices: Sequence[int],
) -> dict[int, Any]:
    """Hidden states at the given indices, running the decoder only as deep as needed.

    A hook stops the forward pass after the deepest requested index, so
    neither the rest of the stack nor the LM head is computed. Gradients flow
    when the caller enables them.
    """
    with capture_states(model, indices, stop=True) as states, contextlib.suppress(_StopForward):
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return states


def masked_token_mean(hidden: Any, attention_mask: Any):
    """Mean over non-padding tokens: ``(batch, seq, hidden) -> (batch, hidden)``."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def sentence_representations(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, indices: Sequence[int]
):
    """Token-mean representations ``(batch, len(indices), hidden)`` of one batch of texts."""
    import torch

    batch = tokenizer(
        list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length
    )
    device = next(model.parameters()).device
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    states = layer_states(model, ids, mask, indices)
    reps = torch.stack([masked_token_mean(states[i].float(), mask) for i in indices], dim=1)
    return reps, int(mask.sum())


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


def corpus_texts(
    langs: Sequence[str], books: str = "ot", per_language: int = 256
) -> dict[str, list[str]]:
    """Sentences of the embedded parallel corpus, with the dominant language always included."""
    from lingualift.data import ParallelCorpus

    corpus = ParallelCorpus()
    codes = list(dict.fromkeys([DOMINANT_LANGUAGE, *(normalize_language(x) for x in langs)]))
    return {c: [r.text for r in corpus.monolingual(c, books, limit=per_language)] for c in codes}


def texts_from_records(source: str, langs: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Group a records file's texts by language (optionally only ``langs``)."""
    from collections import defaultdict

    from lingualift.data import read_records

    groups: dict[str, list[str]] = defaultdict(list)
    for record in read_records(source):
        require(
            record.lang,
            f"Record {record.id!r} in {source} has no language; add a lang column.",
        )
        groups[record.lang].append(record.text)
    if langs:
        wanted = list(dict.fromkeys([DOMINANT_LANGUAGE, *(normalize_language(x) for x in langs)]))
        missing = [c for c in wanted if c not in groups]
        require(
            not missing,
            f"{source} has no text in {', '.join(missing)}; add it or drop those languages.",
        )
        return {c: groups[c] for c in wanted}
    require(
        DOMINANT_LANGUAGE in groups,
        f"{source} has no {DOMINANT_LANGUAGE!r} text; the dominant language needs a vector too.",
    )
    return dict(groups)


def vectors_from_config(config: Any, progress: bool = True) -> tuple[LanguageVectors, Path]:
    """Run :class:`~lingualift.shifcon.config.VectorsConfig`: load, stream, save (atomic)."""
    from lingualift.models import load_causal_lm

    require(config.per_language >= 1, "per_language must be at least 1.")
    if config.data:
        texts = texts_from_records(config.data, config.langs)
        texts = {k: v[: config.per_language] for k, v in texts.items()}
        source = f"{config.data} (first {config.per_language} per language)"
    else:
        texts = corpus_texts(config.langs, config.books, config.per_language)
        source = f"embedded corpus books={config.books} first {config.per_language} verses"
    model, tokenizer = load_causal_lm(config.model, dtype=config.dtype, device=config.device)
    out = Path(config.out)
    # One finished language at a time lands in a partial folder, so an
    # interrupted run resumes with the languages it has not done yet.
    partial = out / ".vectors.partial"
    settings = json.dumps(
        [config.model, source, config.batch_size, config.max_length, config.subspace_rank]
    )
    parts = []
    for lang, sentences in texts.items():
        part_path = partial / f"{lang}.safetensors"
        if part_path.is_file():
            part = LanguageVectors.load(part_path)
            if part.source == settings:
                parts.append(part)
                continue
        part = compute_language_vectors(
            model,
            tokenizer,
            {lang: sentences},
            base_model=config.model,
            batch_size=config.batch_size,
            max_length=config.max_length,
            subspace_rank=config.subspace_rank,
            source=settings,
            progress=progress,
        )
        part.save(part_path)
        parts.append(part)
    vectors = merge_vectors(parts, source)
    path = vectors.save(out / VECTORS_FILE)
    import shutil

    shutil.rmtree(partial, ignore_errors=True)
    return vectors, path


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
