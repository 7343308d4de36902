"""ShifCon training: ``L = alpha * L_gen + beta * L_con`` through the shifted forward.

Every batch holds pairs of one language ``l`` (the published setting). For each
batch:

- the dominant side (``meta.parallel_text``) runs unshifted and only as deep as
  layer ``b`` (no LM head): its token-mean states at indices ``a+1 .. b``
  (outputs of decoder layers ``a .. b-1``) are the anchors;
- the ``l`` side runs through the full model with the shift hooks on; its
  causal-LM loss on the completion is ``L_gen`` and its states at the same
  indices (inside the shifted area, before the shift back) feed ``L_con``.

With gradient checkpointing the two sides run as one mixed batch with
per-row languages (dominant rows unshifted), because recomputation during the
backward pass must see the same hooks as the forward pass.

LoRA (PEFT, ``lora_alpha = 2 r``, all linear layers) by default, full
fine-tuning as an option. ``shift=false`` with ``beta=0`` is the plain LoRA
baseline on the same data and steps. Optimizer, schedule, accumulation and
checkpoints are the shared :class:`~lingualift.training.TrainingLoop`'s: a
checkpoint every ``save_every`` steps makes interrupted runs resume where they
stopped; final outputs land atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_dir, atomic_write_text
from lingualift.config import save_config, to_dict
from lingualift.data import Record
from lingualift.errors import require
from lingualift.languages import normalize_language
from lingualift.shifcon.core import ShifCon
from lingualift.shifcon.loss import contrastive_loss
from lingualift.shifcon.vectors import capture_states, layer_states, masked_token_mean
from lingualift.training import Backward, StepRecord, TrainingLoop


@dataclasses.dataclass
class Pair:
    """One training example: text in ``lang``, its dominant-language parallel, an optional prompt."""

    lang: str
    text: str
    parallel: str
    prompt: str = ""


def pairs_from_records(records: list[Record], dominant: str = "en") -> list[Pair]:
    """Pairs from records carrying ``meta.parallel_text`` (as ``lingualift corpus --parallel`` writes)."""
    pairs = []
    for record in records:
        parallel = record.meta.get("parallel_text")
        require(
            isinstance(parallel, str) and parallel.strip(),
            f"Record {record.id!r} has no meta.parallel_text; ShifCon training needs "
            "parallel pairs (write them with 'lingualift corpus en <lang> --parallel').",
        )
        require(record.lang, f"Record {record.id!r} has no language; add a lang column.")
        if record.lang == dominant:
            continue
        pairs.append(Pair(record.lang, record.text, parallel, str(record.meta.get("prompt") or "")))
    require(pairs, "No non-dominant pairs to train on; check the data's languages.")
    return pairs


def corpus_pairs(
    langs: list[str], books: str, per_language: int, dominant: str = "en"
) -> list[Pair]:
    from lingualift.data import ParallelCorpus

    corpus = ParallelCorpus()
    pairs = []
    for lang in langs:
        for source, target in corpus.parallel(dominant, lang, books, limit=per_language):
            pairs.append(Pair(target.lang, target.text, source.text))
    return pairs


def make_batches(pairs: list[Pair], batch_size: int, seed: int) -> list[list[Pair]]:
    """Single-language batches in a seeded random order (the same order on every resume)."""
    rng = random.Random(seed)
    by_lang: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_lang[pair.lang].append(pair)
    batches = []
    for lang in sorted(by_lang):
        items = by_lang[lang][:]
        rng.shuffle(items)
        batches.extend(items[i : i + batch_size] for i in range(0, len(items), batch_size))
    rng.shuffle(batches)
    return batches


def encode_generation(tokenizer: Any, pairs: list[Pair], max_length: int):
    """Input ids, mask and labels of the ``l`` side; prompt and padding labels are -100."""
    import torch

    rows, label_rows = [], []
    for pair in pairs:
        prompt_ids = tokenizer(pair.prompt)["input_ids"] if pair.prompt else []
        text_ids = tokenizer(pair.text, add_special_tokens=not pair.prompt)["input_ids"]
        ids = (prompt_ids + text_ids)[:max_length]
        labels = ([-100] * len(prompt_ids) + text_ids)[:max_length]
        rows.append(ids)
        label_rows.append(labels)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (ids, labs) in enumerate(zip(rows, label_rows, strict=True)):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
        labels[i, : len(labs)] = torch.tensor(labs)
    return input_ids, mask, labels


def encode_texts(tokenizer: Any, texts: list[str], max_length: int):
    batch = tokenizer(
        texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length
    )
    return batch["input_ids"], batch["attention_mask"]


def _pad_to(tensor: Any, width: int, value: int):
    import torch.nn.functional as F

    return F.pad(tensor, (0, width - tensor.shape[1]), value=value)


def shifcon_losses(
    model: Any,
    tokenizer: Any,
    shifcon: ShifCon,
    pairs: list[Pair],
    alpha: float = 0.5,
    beta: float = 2.0,
    tau: float = 0.05,
    shift: bool = True,
    max_length: int = 128,
    mixed_batch: bool = False,
    backward: Backward | None = None,
) -> dict[str, Any]:
    """``{'loss', 'gen', 'con'}`` of one single-language batch; ``backward(loss)`` if given.

    ``backward`` runs inside the shift context, so gradient checkpointing
    recomputes the forward pass with the same hooks.
    """
    import contextlib

    import torch

    langs = {p.lang for p in pairs}
    require(len(langs) == 1, f"A ShifCon batch holds one language; got {sorted(langs)}.")
    lang = langs.pop()
    device = next(model.parameters()).device
    indices = list(range(shifcon.a + 1, shifcon.b + 1))
    ids, mask, labels = (t.to(device) for t in encode_generation(tokenizer, pairs, max_length))
    use_con = beta > 0 and len(pairs) > 1
    en_ids = en_mask = None
    if use_con:
        en_ids, en_mask = (
            t.to(device) for t in encode_texts(tokenizer, [p.parallel for p in pairs], max_length)
        )

    def context(langs_arg):
        return shifcon.apply(model, langs_arg) if shift else contextlib.nullcontext()

    if use_con and mixed_batch:
        n = len(pairs)
        width = max(ids.shape[1], en_ids.shape[1])
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        all_ids = torch.cat([_pad_to(ids, width, pad), _pad_to(en_ids, width, pad)])
        all_mask = torch.cat([_pad_to(mask, width, 0), _pad_to(en_mask, width, 0)])
        all_labels = torch.cat(
            [_pad_to(labels, width, -100), torch.full_like(_pad_to(en_ids, width, 0), -100)]
        )
        with context([lang] * n + [shifcon.dominant] * n):
            with capture_states(model, indices) as states:
                out = model(
                    input_ids=all_ids, attention_mask=all_mask, labels=all_labels, use_cache=False
                )
            reps = [masked_token_mean(states[i], all_mask) for i in indices]
            gen = out.loss
            con = contrastive_loss([r[n:] for r in reps], [r[:n] for r in reps], tau)
            loss = alpha * gen + beta * con
            if backward is not None:
                backward(loss)
    else:
        en_reps = None
        if use_con:
            en_states = layer_states(model, en_ids, en_mask, indices)
            en_reps = [masked_token_mean(en_states[i], en_mask) for i in indices]
        with context(lang):
            with capture_states(model, indices) as states:
                out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
            gen = out.loss
            if use_con:
                l_reps = [masked_token_mean(states[i], mask) for i in indices]
                con = contrastive_loss(en_reps, l_reps, tau)
            else:
                con = torch.zeros((), device=device)
            loss = alpha * gen + beta * con
            if backward is not None:
                backward(loss)
    return {"loss": loss, "gen": gen.detach(), "con": con.detach()}


def prepare_model(model: Any, config: Any):
    """Wrap with LoRA (PEFT, all linear layers, alpha = 2r) or unfreeze everything."""
    if config.method == "lora":
        from peft import get_peft_model

        from lingualift.adapters.config import LoraSettings

        lora = LoraSettings(
            r=config.lora_r,
            alpha=config.lora_alpha or 2 * config.lora_r,
            dropout=config.lora_dropout,
        )
        model = get_peft_model(model, lora.peft_config())
    else:
        for param in model.parameters():
            param.requires_grad_(True)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.train()
    return model


def _fingerprint(config: Any, pairs: list[Pair]) -> str:
    """What a checkpoint must agree with to be resumed (config minus bookkeeping keys, data)."""
    data = {k: v for k, v in to_dict(config).items() if k not in ("save_every", "device", "out")}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    for pair in pairs:
        digest.update(f"{pair.lang}\t{pair.prompt}\t{pair.text}\t{pair.parallel}\n".encode())
    return digest.hexdigest()[:16]


class ShifConTrainer:
    """One training run: single-language batches and the ShifCon loss on the shared loop."""

    def __init__(
        self, config: Any, model: Any, tokenizer: Any, shifcon: ShifCon, pairs: list[Pair]
    ):
        import torch
        from accelerate import Accelerator

        require(config.alpha >= 0 and config.beta >= 0, "alpha and beta must not be negative.")
        require(config.alpha > 0 or config.beta > 0, "alpha and beta are both 0; nothing to train.")
        require(
            config.batch_size >= 1 and config.grad_accum >= 1,
            "batch_size and grad_accum must be >= 1.",
        )
        require(config.epochs >= 1, "epochs must be at least 1.")
        require(
            config.method in ("lora", "full"),
            f"method must be lora or full, got {config.method!r}.",
        )
        self.config = config
        self.tokenizer = tokenizer
        self.shifcon = shifcon
        self.pairs = pairs
        self.out = Path(config.out)
        torch.manual_seed(config.seed)
        shifcon.vectors.check_model(model)
        model = prepare_model(model, config)
        batches = make_batches(pairs, config.batch_size, config.seed)
        per_epoch = max(1, len(batches) // config.grad_accum)
        self.total_steps = config.max_steps or per_epoch * config.epochs
        require(self.total_steps >= 1, "No optimizer steps to run; give more data or max_steps.")
        # Enough seeded epochs of batches to cover every step.
        epochs_needed = math.ceil(self.total_steps * config.grad_accum / len(batches))
        self.batches = [
            b
            for e in range(epochs_needed)
            for b in make_batches(pairs, config.batch_size, config.seed + e)
        ]
        fingerprint = _fingerprint(config, pairs)
        # The model stays where config.device put it (device_placement=False); the model's
        # dtype, not autocast, sets the precision.
        self.loop = TrainingLoop(
            model,
            Accelerator(mixed_precision="no", device_placement=False),
            lr=config.lr,
            weight_decay=config.weight_decay,
            max_grad_norm=1.0,
            run_dir=self.out,
            fingerprint=lambda: fingerprint,
            settings="config or data",
        )
        self.model = self.loop.model
        name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[
            config.schedule
        ]
        self.loop.build_schedule(
            name, round(config.warmup_ratio * self.total_steps), self.total_steps
        )
        self.state: dict[str, Any] = {"history": [], "seconds": 0.0}

    @property
    def step(self) -> int:
        """Optimizer steps done."""
        return self.loop.step

    @property
    def log(self) -> list[dict[str, Any]]:
        """One entry a step: step, lr, lang, loss, gen, con."""
        return self.state["history"]

    def _step(self, step: int) -> StepRecord:
        first = step * self.config.grad_accum
        batches = self.batches[first : first + self.config.grad_accum]
        losses = self.loop.train_step(batches, self._loss)
        lr = self.loop.scheduler.get_last_lr()[0]
        return StepRecord({"lr": lr, "lang": batches[-1][0].lang, **losses})

    def _loss(self, batch: list[Pair], backward: Backward) -> dict[str, Any]:
        config = self.config
        return shifcon_losses(
            self.model,
            self.tokenizer,
            self.shifcon,
            batch,
            alpha=config.alpha,
            beta=config.beta,
            tau=config.tau,
            shift=config.shift,
            max_length=config.max_length,
            mixed_batch=config.gradient_checkpointing,
            backward=backward,
        )

    def train(self, progress: bool = True) -> dict[str, Any]:
        """Train to ``total_steps``, resuming from this run's checkpoint when there is one."""
        self.state = self.loop.resume() or self.state
        start, seconds_before = self.step, self.state["seconds"]
        self.loop.fit(
            self.total_steps,
            self._step,
            self.state,
            desc="shifcon train",
            save_every=self.config.save_every,
            show=("loss", "gen", "con"),
            show_progress=progress,
        )
        seconds = self.state["seconds"] - seconds_before
        steps_this_run = self.step - start
        last = self.log[-1] if self.log else {}
        return {
            "steps": self.step,
            "seconds_this_run": round(seconds, 1),
            "seconds_per_step": round(seconds / steps_this_run, 2) if steps_this_run else None,
            "final_loss": last.get("loss"),
            "final_gen": last.get("gen"),
            "final_con": last.get("con"),
        }

    def save(self, metrics: dict[str, Any]) -> None:
        """Adapter (or full model), the ShifCon folder, config, log and metrics; then drop the checkpoints."""
        target = "adapter" if self.config.method == "lora" else "model"
        with atomic_dir(self.out / target, overwrite=True) as tmp:
            self.model.save_pretrained(tmp)
            if target == "model":
                self.tokenizer.save_pretrained(tmp)
        self.shifcon.save(self.out / "shifcon")
        save_config(self.config, self.out / "config.yaml")
        atomic_write_text(self.out / "log.jsonl", "".join(json.dumps(e) + "\n" for e in self.log))
        atomic_write_text(self.out / "metrics.json", json.dumps(metrics, indent=2))
        self.loop.discard_checkpoints()


def train_from_config(config: Any, progress: bool = True) -> dict[str, Any]:
    """Run :class:`~lingualift.shifcon.config.TrainConfig` end to end."""
    from lingualift.data import read_records
    from lingualift.models import load_causal_lm

    out = Path(config.out)
    require(
        not (out / "metrics.json").is_file(),
        f"{out} already holds a finished run; choose another out folder or delete it.",
    )
    shifcon = ShifCon.load(config.shifcon)
    model_spec = config.model or shifcon.base_model
    dominant = shifcon.dominant
    if config.langs:
        langs = [normalize_language(x) for x in config.langs]
        for lang in langs:
            shifcon.vectors.vector(lang)  # a language without a vector fails here, clearly
    else:
        langs = [x for x in shifcon.languages if x != dominant]
    require(
        dominant not in langs, f"Train on non-dominant languages; drop {dominant!r} from langs."
    )
    if config.data:
        pairs = [
            p for p in pairs_from_records(read_records(config.data), dominant) if p.lang in langs
        ]
        for pair in pairs:
            shifcon.vectors.vector(pair.lang)
    else:
        pairs = corpus_pairs(langs, config.books, config.per_language, dominant)
    require(pairs, "No training pairs; widen books/per_language or check the data.")
    model, tokenizer = load_causal_lm(model_spec, dtype=config.dtype, device=config.device)
    trainer = ShifConTrainer(config, model, tokenizer, shifcon, pairs)
    metrics = trainer.train(progress=progress)
    metrics.update(
        pairs=len(pairs),
        languages=sorted({p.lang for p in pairs}),
        method=config.method,
        shift=config.shift,
        alpha=config.alpha,
        beta=config.beta,
        a=shifcon.a,
        b=shifcon.b,
        base_model=model_spec,
    )
    trainer.save(metrics)
    return metrics
