"""LoRA training for one language: PEFT for the adapter, accelerate for devices and processes.

``train(config)`` is the whole job (what ``lingualift train`` calls): read the
data and the optional COMPASS selection, hold out a split, train, checkpoint,
evaluate, and store the adapter with its card. The same entry point runs
under ``accelerate launch`` (DDP/FSDP across GPUs or machines): accelerate
reads the launch environment, and each process takes its own slice of every
global batch.

The data order is a pure function of (seed, step): step ``s`` reads positions
``s*G .. (s+1)*G`` of an endless stream of per-epoch permutations, ``G`` being
the global batch. Resuming therefore needs only the step number, the adapter
weights, the optimizer and scheduler states and the RNG states, which is what
a checkpoint of the shared :class:`~lingualift.training.TrainingLoop` holds;
the loop also runs the optimizer steps and the progress bar, so this module
keeps the data, the loss, the held-out evaluation and the stored adapter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from pathlib import Path
from typing import Any

from lingualift.adapters.config import TrainConfig
from lingualift.adapters.data import (
    DataSummary,
    Example,
    collate,
    read_examples,
    read_selection,
    selection_report,
    split_heldout,
    tokenize_examples,
)
from lingualift.adapters.store import AdapterStore, AdapterVersion, base_model_signature
from lingualift.atomic import atomic_write_text
from lingualift.config import to_dict
from lingualift.errors import LingualiftError
from lingualift.training import Backward, StepRecord, TrainingLoop

logger = logging.getLogger(__name__)

_MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@dataclasses.dataclass
class TrainResult:
    """What a finished run produced."""

    adapter: AdapterVersion | None
    """The stored version (None on processes other than the main one)."""
    metrics: dict[str, Any]
    run_dir: Path


@dataclasses.dataclass
class TrainingData:
    """The examples of a run, read (and checked) before any model is loaded."""

    examples: list[Example]
    summaries: list[DataSummary]
    selection: dict[str, Any] | None


def read_training_data(config: TrainConfig) -> TrainingData:
    """Read the data file and the COMPASS selection named by ``config``."""
    examples: list[Example] = []
    summaries: list[DataSummary] = []
    selection = None
    if config.data is not None:
        found, summary = read_examples(
            config.data,
            config.data_format,
            config.text_field,
            config.prompt_field,
            config.completion_field,
            config.messages_field,
            limit=config.data_limit,
        )
        examples.extend(found)
        summaries.append(summary)
    if config.selection is not None:
        found, summary = read_selection(config.selection, config.selection_limit)
        examples.extend(found)
        summaries.append(summary)
        selection = {**dataclasses.asdict(summary), "report": selection_report(summary.path)}
    return TrainingData(examples, summaries, selection)


class LoraTrainer:
    """Train a LoRA adapter on a causal LM.

    The pieces are public so that benchmarks and other loops (COMPASS-ECDA's
    continual updates) can reuse them: :meth:`load_data`, :meth:`build_schedule`,
    :meth:`train_step` (one optimizer step) and :meth:`evaluate`.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: Any = None,
        tokenizer: Any = None,
        accelerator: Any = None,
        init_adapter: str | Path | None = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from peft import PeftModel, get_peft_model

        self.config = config
        self.accelerator = accelerator or Accelerator(
            mixed_precision=_MIXED_PRECISION[config.precision]
        )
        if model is None:
            from lingualift.models import load_causal_lm

            model, tokenizer = load_causal_lm(config.model)
        if tokenizer is None:
            raise ValueError("pass the tokenizer together with the model")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.base_model = base_model_signature(model, config.model)
        set_seed(config.seed)  # the adapter's initialisation depends on it
        if init_adapter is not None:
            # Continue from an earlier version (continual updates start from the current one).
            peft_model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
        else:
            peft_model = get_peft_model(model, config.lora.peft_config())
        peft_model.train()
        self.loop = TrainingLoop(
            peft_model,
            self.accelerator,
            lr=config.lr,
            weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm,
            run_dir=self.run_dir,
            fingerprint=self._fingerprint,
            settings="data, LoRA settings or batch size",
            keep_checkpoints=config.keep_checkpoints,
        )
        self.model = self.loop.model
        self.train_rows: list[dict[str, list[int]]] = []
        self.eval_rows: list[dict[str, list[int]]] = []
        self.data_summaries: list[DataSummary] = []
        self.selection: dict[str, Any] | None = None
        self._permutations: dict[int, list[int]] = {}

    # -- data ------------------------------------------------------------------------------

    def load_data(self, data: TrainingData | None = None) -> None:
        """Split and tokenise the training data (read from the config unless given)."""
        config = self.config
        data = data or read_training_data(config)
        self.data_summaries = data.summaries
        self.selection = data.selection
        examples = data.examples
        train, heldout = split_heldout(examples, config.eval_fraction, config.seed)
        self.train_rows = tokenize_examples(
            train, self.tokenizer, config.max_length, config.packing
        )
        self.eval_rows = tokenize_examples(
            heldout, self.tokenizer, config.max_length, config.packing
        )
        if not self.train_rows:
            raise LingualiftError(
                "No training example has a token to learn from after tokenisation; "
                "check the data (empty completions?) and max_length."
            )

    @property
    def global_batch(self) -> int:
        c = self.config
        return c.batch_size * c.grad_accum * self.accelerator.num_processes

    def total_steps(self) -> int:
        if self.config.max_steps > 0:
            return self.config.max_steps
        return max(1, math.ceil(self.config.epochs * len(self.train_rows) / self.global_batch))

    def _position(self, position: int) -> int:
        n = len(self.train_rows)
        epoch, offset = divmod(position, n)
        if epoch not in self._permutations:
            order = list(range(n))
            random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
            self._permutations = {epoch: order}  # one epoch at a time is enough
        return self._permutations[epoch][offset]

    def micro_batches(self, step: int) -> list[dict[str, Any]]:
        """This process's micro-batches of optimizer step ``step`` (0-based)."""
        c = self.config
        start = step * self.global_batch
        indices = [self._position(start + i) for i in range(self.global_batch)]
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        per_micro = c.batch_size * world
        out = []
        for a in range(c.grad_accum):
            chunk = indices[a * per_micro : (a + 1) * per_micro]
            mine = chunk[rank * c.batch_size : (rank + 1) * c.batch_size]
            out.append(collate([self.train_rows[i] for i in mine], self.tokenizer.pad_token_id))
        return out

    # -- optimisation ----------------------------------------------------------------------

    def build_schedule(self, total_steps: int) -> None:
        self.loop.build_schedule(self.config.schedule, self.config.warmup_steps, total_steps)

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches; returns loss and token count."""
        out = self.loop.train_step(micro_batches, self._loss)
        tokens = sum(int(batch["attention_mask"].sum()) for batch in micro_batches)
        return {"loss": out["loss"], "tokens": tokens}

    def _loss(self, batch: dict[str, Any], backward: Backward) -> dict[str, Any]:
        # The model stays in train mode (evaluate() restores it): model.train() walks every
        # module, which costs milliseconds per step.
        batch = {k: v.to(self.accelerator.device) for k, v in batch.items()}
        loss = self.model(**batch).loss
        backward(loss)
        return {"loss": loss}

    def evaluate(self, batch_size: int | None = None) -> float | None:
        """Token-weighted mean loss on the held-out rows (None when there are none)."""
        import torch

        if not self.eval_rows:
            return None
        accelerator = self.accelerator
        batch_size = batch_size or self.config.batch_size
        rows = self.eval_rows[accelerator.process_index :: accelerator.num_processes]
        totals = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = collate(rows[start : start + batch_size], self.tokenizer.pad_token_id)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                logits = self.model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits[:, :-1]
                labels = batch["labels"][:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)).float(),
                    labels.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                )
                totals[0] += loss.double()
                totals[1] += (labels != -100).sum()
        self.model.train()
        totals = accelerator.reduce(totals, reduction="sum")
        return float(totals[0] / totals[1].clamp(min=1))

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    def _fingerprint(self) -> dict[str, Any]:
        return {
            "data": [s.fingerprint for s in self.data_summaries],
            "lora": to_dict(self.config.lora),
            "global_batch": self.global_batch,
        }

    # -- the job ---------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train to the end (resuming if asked), evaluate, store the adapter."""
        config, accelerator = self.config, self.accelerator
        if not self.train_rows:
            self.load_data()
        total = self.total_steps()
        self.build_schedule(total)
        state: dict[str, Any] = {"history": [], "evals": [], "tokens": 0, "seconds": 0.0}
        if config.resume:
            restored = self.loop.resume()
            if restored is None:
                logger.warning("No checkpoint in %s; starting from step 0.", self.run_dir)
            else:
                state = restored
        if self.loop.step == 0:
            state["evals"].append({"step": 0, "eval_loss": self.evaluate()})

        def step(index: int) -> StepRecord:
            out = self.train_step(self.micro_batches(index))
            return StepRecord(
                {"loss": out["loss"]}, {"tokens": out["tokens"] * accelerator.num_processes}
            )

        def evaluate_now(done: int) -> dict[str, str]:
            if not (config.eval_every and done % config.eval_every == 0 and done < total):
                return {}
            eval_loss = self.evaluate()
            state["evals"].append({"step": done, "eval_loss": eval_loss})
            return {} if eval_loss is None else {"eval": f"{eval_loss:.3f}"}

        self.loop.fit(
            total,
            step,
            state,
            desc=f"train {config.lang}",
            save_every=config.save_every,
            log_every=config.log_every,
            after_step=evaluate_now,
        )
        state["evals"].append({"step": total, "eval_loss": self.evaluate()})
        metrics = self._metrics(total, state)
        adapter = None
        if accelerator.is_main_process:
            self._write_run_outputs(metrics, state)
            adapter = AdapterStore(config.store).save(
                config.lang,
                accelerator.unwrap_model(self.model),
                card=self.card(metrics),
                promote=config.promote,
            )
        accelerator.wait_for_everyone()
        return TrainResult(adapter=adapter, metrics=metrics, run_dir=self.run_dir)

    def _metrics(self, total: int, state: dict[str, Any]) -> dict[str, Any]:
        losses = [h["loss"] for h in state["history"]]
        tail = losses[-max(1, len(losses) // 10) :] if losses else []
        evals = [e["eval_loss"] for e in state["evals"] if e["eval_loss"] is not None]
        return {
            "steps": total,
            "train_rows": len(self.train_rows),
            "eval_rows": len(self.eval_rows),
            "train_loss_first": losses[0] if losses else None,
            "train_loss_last": sum(tail) / len(tail) if tail else None,
            "eval_loss_before": evals[0] if evals else None,
            "eval_loss": evals[-1] if evals else None,
            "tokens": state["tokens"],
            "train_seconds": round(state["seconds"], 3),
            "tokens_per_s": round(state["tokens"] / state["seconds"], 1)
            if state["seconds"]
            else None,
            "history": state["history"],
            "evals": state["evals"],
        }

    def card(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The adapter card's content (the store adds lang, version and time)."""
        import peft
        import torch
        import transformers

        import lingualift

        return {
            "base_model": self.base_model,
            "data": [dataclasses.asdict(s) for s in self.data_summaries],
            "selection": self.selection,
            "config": to_dict(self.config),
            "metrics": metrics,
            "software": {
                "lingualift": lingualift.__version__,
                "peft": peft.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
        }

    def _write_run_outputs(self, metrics: dict[str, Any], state: dict[str, Any]) -> None:
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(metrics, indent=2))
        if state["history"]:
            plot_losses(
                state["history"], state["evals"], self.run_dir / "loss.png", self.config.lang
            )


def plot_losses(history, evals, path: Path, lang: str) -> None:
    """Training and held-out loss against steps, as a PNG."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train")
    points = [e for e in evals if e["eval_loss"] is not None]
    if points:
        ax.plot(
            [e["step"] for e in points], [e["eval_loss"] for e in points], "o-", label="held-out"
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"LoRA adapter for {lang}")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def train(config: TrainConfig, model: Any = None, tokenizer: Any = None) -> TrainResult:
    """Train and store one language adapter (the job behind ``lingualift train``)."""
    data = read_training_data(config)  # bad data fails before the model loads
    trainer = LoraTrainer(config, model=model, tokenizer=tokenizer)
    trainer.load_data(data)
    return trainer.fit()
