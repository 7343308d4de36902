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
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from lingualift.config import settings_of, to_dict
from lingualift.data import Record
from lingualift.errors import require
from lingualift.shifcon.capture import capture_states, layer_states, masked_token_mean
from lingualift.shifcon.core import ShifCon
from lingualift.shifcon.loss import ShifConObjective, contrastive_loss
from lingualift.training import (
    Backward,
    LoraSettings,
    StepRecord,
    TrainingArgs,
    TrainingLoop,
    prepare_kbit_model,
    upcast_trainable,
)


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
    train_anchors: bool = True,
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
            anchors = [r[n:] if train_anchors else r[n:].detach() for r in reps]
            con = contrastive_loss(anchors, [r[:n] for r in reps], tau)
            loss = alpha * gen + beta * con
            if backward is not None:
                backward(loss)
    else:
        en_reps = None
        if use_con:
            with torch.set_grad_enabled(train_anchors and torch.is_grad_enabled()):
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


def prepare_model(model: Any, lora: LoraSettings | None, gradient_checkpointing: bool):
    """Wrap with a LoRA adapter (PEFT) or, with ``lora=None``, unfreeze every parameter.

    A quantized base (QLoRA) gets PEFT's k-bit preparation first and trains LoRA only; the
    LoRA weights stay float32 whatever the base's dtype.
    """
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(
        model, "is_loaded_in_8bit", False
    )
    require(
        lora is not None or not quantized,
        "Full fine-tuning trains every weight, which a quantized base cannot hold; use "
        "method=lora or quantization=none.",
    )
    if lora is not None:
        from peft import get_peft_model

        model = prepare_kbit_model(model, gradient_checkpointing)
        model = get_peft_model(model, lora.peft_config())
        upcast_trainable(model)
    else:
        for param in model.parameters():
            param.requires_grad_(True)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.train()
    return model


def pairs_digest(pairs: list[Pair]) -> str:
    """sha256 over the pairs, in order (what a checkpoint and a card record of the data)."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(f"{pair.lang}\t{pair.prompt}\t{pair.text}\t{pair.parallel}\n".encode())
    return digest.hexdigest()


class ShifConTrainer:
    """One training run: single-language batches and the ShifCon loss on the shared loop.

    ``lora=None`` fine-tunes every parameter instead of a LoRA adapter.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        shifcon: ShifCon,
        pairs: list[Pair],
        args: TrainingArgs,
        *,
        objective: ShifConObjective | None = None,
        lora: LoraSettings | None = None,
        run_dir: str | Path,
        accelerator: Any = None,
    ):
        import torch

        require(pairs, "No training pairs; widen books/per_language or check the data.")
        self.args = args
        self.objective = objective or ShifConObjective()
        self.tokenizer = tokenizer
        self.shifcon = shifcon
        self.pairs = pairs
        torch.manual_seed(args.seed)
        shifcon.vectors.check_model(model)
        # Unset gradient checkpointing (auto) is decided by the verbs' pre-load check: off here.
        self.checkpointing = bool(args.gradient_checkpointing)
        model = prepare_model(model, lora, self.checkpointing)
        batches = make_batches(pairs, args.batch_size, args.seed)
        self.total_steps = args.total_steps(len(batches))
        # Enough seeded epochs of batches to cover every step.
        epochs_needed = math.ceil(self.total_steps * args.grad_accum / len(batches))
        self.batches = [
            b
            for e in range(epochs_needed)
            for b in make_batches(pairs, args.batch_size, args.seed + e)
        ]
        fingerprint = {
            "args": settings_of(args),  # a resume may change checkpointing and logging
            "objective": to_dict(self.objective),
            "lora": to_dict(lora) if lora else "full",
            "pairs": pairs_digest(pairs),
        }
        self.loop = TrainingLoop(
            model,
            args,
            run_dir=run_dir,
            fingerprint=lambda: fingerprint,
            settings="settings or data",
            accelerator=accelerator,
        )
        self.model = self.loop.model
        self.loop.build_schedule(self.total_steps)
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
        first = step * self.args.grad_accum
        batches = self.batches[first : first + self.args.grad_accum]
        losses = self.loop.train_step(batches, self._loss)
        lr = self.loop.scheduler.get_last_lr()[0]
        return StepRecord({"lr": lr, "lang": batches[-1][0].lang, **losses})

    def _loss(self, batch: list[Pair], backward: Backward) -> dict[str, Any]:
        objective = self.objective
        return shifcon_losses(
            self.model,
            self.tokenizer,
            self.shifcon,
            batch,
            alpha=objective.alpha,
            beta=objective.beta,
            tau=objective.tau,
            shift=objective.shift,
            max_length=self.args.max_length,
            mixed_batch=self.checkpointing,
            train_anchors=objective.train_anchors,
            backward=backward,
        )

    def train(self, progress: bool = True) -> dict[str, Any]:
        """Train to ``total_steps``, resuming from this run's checkpoint when there is one."""
        self.state = self.loop.resume() or self.state
        start, seconds_before = self.step, self.state["seconds"]
        self.loop.start_tracking({"pairs": len(self.pairs), **to_dict(self.objective)})
        self.loop.fit(
            self.total_steps,
            self._step,
            self.state,
            desc="shifcon train",
            show=("loss", "gen", "con"),
            show_progress=progress,
        )
        self.loop.end_tracking()
        seconds = self.state["seconds"] - seconds_before
        steps_this_run = self.step - start
        last = self.log[-1] if self.log else {}
        return {
            "steps": self.step,
            "pairs": len(self.pairs),
            "languages": sorted({p.lang for p in self.pairs}),
            "seconds_this_run": round(seconds, 1),
            "seconds_per_step": round(seconds / steps_this_run, 2) if steps_this_run else None,
            "final_loss": last.get("loss"),
            "final_gen": last.get("gen"),
            "final_con": last.get("con"),
        }
