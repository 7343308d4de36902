"""Tiny random-initialised models and a byte-level tokenizer, for tests and benchmarks.

Nothing here downloads anything: the tokenizer is built from the 256 byte
values, and models are built from configs of real architectures (Gemma3, Llama,
Qwen2, Mistral, Phi-3) at toy sizes, or at a real model's shape for speed
benchmarks on machines that cannot reach a hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARCHITECTURES = ("gemma3", "llama", "qwen2", "mistral", "phi3")
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def byte_tokenizer():
    """A byte-level BPE tokenizer with no merges: every UTF-8 byte is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for char in sorted(alphabet):
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def model_config(
    arch: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 4,
    vocab_size: int = 262,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_positions: int = 4096,
    **extra: Any,
):
    """A transformers config of architecture ``arch`` at the given size."""
    import transformers

    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size or 2 * hidden_size,
        max_position_embeddings=max_positions,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )
    if arch == "gemma3":
        common.update(
            head_dim=hidden_size // num_heads,
            sliding_window=128,
            layer_types=[
                "sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(num_layers)
            ],
        )
        config_cls = transformers.Gemma3TextConfig
    elif arch == "llama":
        config_cls = transformers.LlamaConfig
    elif arch == "qwen2":
        config_cls = transformers.Qwen2Config
    elif arch == "mistral":
        config_cls = transformers.MistralConfig
    elif arch == "phi3":
        common.pop("tie_word_embeddings")
        config_cls = transformers.Phi3Config
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    common.update(extra)
    return config_cls(**common)


def tiny_causal_lm(arch: str = "llama", seed: int = 0, **config_kwargs: Any):
    """A random-initialised causal LM of architecture ``arch`` plus the byte tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(model_config(arch, **config_kwargs))
    model.eval()
    return model, byte_tokenizer()


def save_tiny_causal_lm(
    path: str | Path, arch: str = "llama", seed: int = 0, **config_kwargs: Any
) -> Path:
    """Save a tiny model and tokenizer to ``path`` so it loads like any local model."""
    model, tokenizer = tiny_causal_lm(arch, seed=seed, **config_kwargs)
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def convert_tiny_embedded(name: str, out_dir: str | Path, arch: str = "gemma3") -> Path:
    """Stand-in for the embedded model's GGUF conversion (``lingualift.models._convert_embedded``).

    Writes a tiny model of the same family, deterministic for a name, with the real
    provenance file, so tests can train, store, export and reload "embedded" artifacts
    in seconds on any ``LINGUALIFT_HOME``.
    """
    import json

    from lingualift.portable import PROVENANCE_FILE, embedded_weights

    out_dir = Path(out_dir)
    # The vocabulary is the tokenizer's exactly: lm-eval resizes a model's embeddings to the
    # tokenizer when it loads an adapter, which would change every log-probability.
    vocab = len(byte_tokenizer())
    save_tiny_causal_lm(out_dir, arch, seed=0, hidden_size=32, num_layers=4, vocab_size=vocab)
    (out_dir / PROVENANCE_FILE).write_text(
        json.dumps({"embedded": name, **embedded_weights(name)}, indent=2)
    )
    return out_dir


class SphereMixture:
    """Unit vectors from a known law shaped like sentence embeddings, for the drift monitor's tests.

    Sentence encoders such as e5 put every text in a narrow cone (one large
    common direction: unrelated texts have cosines around 0.6-0.8) with a few
    dominant directions (a decaying spectrum). Here topics are Gaussian blobs in
    such a cone with random shares; ``draw`` samples the law, optionally with
    other topic shares or a share of queries from a topic the law never had
    (novel queries). Everything is drawn from the generator the caller passes,
    so a test can draw references and windows independently.
    """

    def __init__(self, seed: int = 0, dim: int = 32, topics: int = 12, common: float = 2.2) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        axis = rng.normal(size=dim)
        axis /= np.linalg.norm(axis)
        # Spectrum 1/i over the coordinates, in a random order: a few directions dominate.
        scales = (1.0 / np.sqrt(np.arange(1, dim + 1)))[rng.permutation(dim)]
        self.dim = dim
        self.centers = common * axis + 0.9 * rng.normal(size=(topics, dim)) * scales
        self.novel_center = common * axis + 0.9 * rng.normal(size=dim) * scales
        self.noise = 0.35 * scales
        self.shares = rng.dirichlet(np.full(topics, 2.0))

    def draw(self, n: int, rng: Any, shares: Any = None, novel_share: float = 0.0) -> Any:
        """``n`` unit rows (float32); ``novel_share`` of them from the topic the law lacks."""
        import numpy as np

        shares = self.shares if shares is None else np.asarray(shares, dtype=np.float64)
        centers = np.concatenate([self.centers, self.novel_center[None]])
        weights = np.append((1.0 - novel_share) * shares / shares.sum(), novel_share)
        topics = rng.choice(len(centers), n, p=weights)
        x = centers[topics] + rng.normal(size=(n, self.dim)) * self.noise
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
