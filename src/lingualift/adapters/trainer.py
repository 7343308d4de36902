"""LoRA training for one language: PEFT for the adapter, accelerate for devices and processes.

:class:`LoraTrainer` takes a model, a tokenizer, :class:`~lingualift.training.TrainingArgs`
and the examples, and returns a :class:`TrainedAdapter`; storing it is a separate
call (:meth:`lingualift.adapters.AdapterStore.save`), and the shared step that does
both is :func:`lingualift.workflows.training.train_and_store` (the ``train`` job's
body). The same code runs under ``accelerate launch`` (DDP/FSDP across GPUs or
machines): accelerate reads the launch environment, and each process takes its own
slice of every global batch.

The data order is a pure function of (seed, step): step ``s`` reads positions
``s*G .. (s+1)*G`` of an endless stream of per-epoch permutations, ``G`` being
the global batch. Resuming therefore needs only the step number, the adapter
weights, the optimizer and scheduler states and the RNG states, which is what
a checkpoint of the shared :class:`~lingualift.training.TrainingLoop` holds;
the loop also runs the optimizer steps, the extra loss terms (a continual
update's penalty) and the progress bar, so this module keeps the data, the
loss, the held-out evaluation and the trained adapter.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.adapters.data import (
    DataSummary,
    Example,
    collate,
    model_inputs,
    token_count,
    tokenize_examples,
)
from lingualift.adapters.heldout import nll_totals
from lingualift.adapters.store import base_model_signature
from lingualift.config import settings_of, to_dict
from lingualift.errors import LingualiftError
from lingualift.training import (
    Backward,
    LoraSettings,
    StepRecord,
    TrainingArgs,
    TrainingLoop,
    prepare_kbit_model,
    upcast_trainable,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainedAdapter:
    """What a finished run produced: the adapter (still on its model) and its numbers."""

    model: Any
    """The PEFT model; ``model.save_pretrained(folder)`` writes the adapter."""
    metrics: dict[str, Any]
    """Steps, losses before/after, tokens, seconds, the loss history and held-out evaluations."""
    base_model: dict[str, Any]
    """The base model's signature (what an adapter depends on)."""
    data: list[DataSummary]
    """What the run trained on (paths, roles, fingerprints)."""
    state_dict: dict[str, Any] | None = None
    """The whole model's weights gathered from the processes when they are sharded (FSDP);
    None when ``model`` holds them itself."""

    def save(self, folder: str | Path) -> None:
        """Write the PEFT adapter folder (from the gathered weights under FSDP)."""
        if self.state_dict is None:
            self.model.save_pretrained(str(folder))
        else:
            self.model.save_pretrained(str(folder), state_dict=self.state_dict)

    def plot(self, path: str | Path, title: str) -> Path:
        """Training and held-out loss against steps, as a PNG."""
        return plot_losses(self.metrics["history"], self.metrics["evals"], Path(path), title)


class LoraTrainer:
    """Train a LoRA adapter on a causal LM.

    The pieces are public so that benchmarks and other loops can reuse them:
    :meth:`load_data`, :meth:`micro_batches`, :meth:`train_step` (one optimizer
    step), :meth:`evaluate`, and ``trainer.loop`` (add loss terms there).
    ``init_adapter`` continues from an earlier version's PEFT folder (a continual
    update starts from the current one) instead of a fresh ``lora`` adapter.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        args: TrainingArgs,
        lora: LoraSettings | None = None,
        *,
        run_dir: str | Path,
        init_adapter: str | Path | None = None,
        accelerator: Any = None,
        base_spec: str | None = None,
    ) -> None:
        from accelerate.utils import set_seed
        from peft import PeftModel, get_peft_model

        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.args = args
        self.lora = lora or LoraSettings()
        self.tokenizer = tokenizer
        self.run_dir = Path(run_dir)
        self.init_adapter = str(init_adapter) if init_adapter is not None else None
        self.base_model = base_model_signature(model, base_spec)
        set_seed(args.seed)  # the adapter's initialisation depends on it
        checkpointing = bool(args.gradient_checkpointing)  # unset (auto) was not decided: off
        # QLoRA: a quantized base gets PEFT's k-bit preparation before LoRA goes on.
        model = prepare_kbit_model(model, checkpointing)
        if self.init_adapter is not None:
            peft_model = PeftModel.from_pretrained(model, self.init_adapter, is_trainable=True)
        else:
            peft_model = get_peft_model(model, self.lora.peft_config())
        upcast_trainable(peft_model)  # LoRA weights in float32 whatever the base's dtype
        if checkpointing:
            peft_model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
            peft_model.enable_input_require_grads()
        peft_model.train()
        self.loop = TrainingLoop(
            peft_model,
            args,
            run_dir=self.run_dir,
            fingerprint=self._fingerprint,
            settings="data, LoRA settings or batch size",
            accelerator=accelerator,
        )
        self.accelerator = self.loop.accelerator
        self.model = self.loop.model
        self.train_rows: list[dict[str, list[int]]] = []
        self.eval_rows: list[dict[str, list[int]]] = []
        self.data: list[DataSummary] = []
        self._permutations: dict[int, list[int]] = {}

    # -- data ------------------------------------------------------------------------------

    def load_data(
        self,
        train: Sequence[Example],
        heldout: Sequence[Example] = (),
        summaries: Sequence[DataSummary] = (),
        packing: bool = False,
    ) -> None:
        """Tokenise the training and held-out examples (packed into full rows with ``packing``)."""
        max_length = self.args.max_length
        self.data = list(summaries)
        self.train_rows = tokenize_examples(train, self.tokenizer, max_length, packing)
        self.eval_rows = tokenize_examples(heldout, self.tokenizer, max_length, packing)
        if not self.train_rows:
            raise LingualiftError(
                "No training example has a token to learn from after tokenisation; "
                "check the data (empty completions?) and max_length."
            )

    @property
    def global_batch(self) -> int:
        return self.args.batch_size * self.args.grad_accum * self.accelerator.num_processes

    def total_steps(self) -> int:
        world = self.accelerator.num_processes
        micro = -(-len(self.train_rows) // (self.args.batch_size * world))
        return self.args.total_steps(micro)

    def _position(self, position: int) -> int:
        n = len(self.train_rows)
        epoch, offset = divmod(position, n)
        if epoch not in self._permutations:
            order = list(range(n))
            random.Random(self.args.seed * 1_000_003 + epoch).shuffle(order)
            self._permutations = {epoch: order}  # one epoch at a time is enough
        return self._permutations[epoch][offset]

    def micro_batches(self, step: int) -> list[dict[str, Any]]:
        """This process's micro-batches of optimizer step ``step`` (0-based)."""
        args = self.args
        start = step * self.global_batch
        indices = [self._position(start + i) for i in range(self.global_batch)]
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        per_micro = args.batch_size * world
        out = []
        for a in range(args.grad_accum):
            chunk = indices[a * per_micro : (a + 1) * per_micro]
            mine = chunk[rank * args.batch_size : (rank + 1) * args.batch_size]
            out.append(collate([self.train_rows[i] for i in mine], self.tokenizer.pad_token_id))
        return out

    # -- optimisation ----------------------------------------------------------------------

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches; returns losses and token count."""
        tokens = sum(token_count(batch) for batch in micro_batches)
        out = self.loop.train_step(micro_batches, self._loss)
        return {**out, "tokens": tokens}

    def _loss(self, batch: dict[str, Any], backward: Backward) -> dict[str, Any]:
        # The model stays in train mode (evaluate() restores it): model.train() walks every
        # module, which costs milliseconds per step.
        inputs = model_inputs(batch, self.accelerator.device)
        inputs.setdefault("use_cache", False)  # a training step has no use for a KV cache
        loss = self.model(**inputs).loss
        backward(loss)
        return {"loss": loss}

    def evaluate(self, batch_size: int | None = None) -> float | None:
        """Token-weighted mean loss on the held-out rows (None when there are none)."""
        if not self.eval_rows:
            return None
        accelerator = self.accelerator
        if self.loop.sharded:
            # FSDP gathers weights inside every forward, so each process runs the same batches:
            # all rows, no reduction.
            rows, model = self.eval_rows, self.model
        else:
            # Each process scores its slice on the unwrapped model: DDP's forward may sync
            # buffers, which would wait on a process whose slice has fewer batches.
            rows = self.eval_rows[accelerator.process_index :: accelerator.num_processes]
            model = accelerator.unwrap_model(self.model)
        totals = nll_totals(
            model,
            rows,
            self.tokenizer.pad_token_id,
            batch_size or self.args.batch_size,
            accelerator.device,
        )
        self.model.train()
        if not self.loop.sharded:
            totals = accelerator.reduce(totals, reduction="sum")
        return float(totals[0] / totals[1].clamp(min=1))

    def _tracked_settings(self) -> dict[str, Any]:
        lora = {f"lora_{k}": v for k, v in to_dict(self.lora).items()}
        return {**lora, "init_adapter": self.init_adapter or ""}

    def _fingerprint(self) -> dict[str, Any]:
        args = settings_of(self.args)  # a resume may change checkpointing and logging
        return {
            "data": [s.fingerprint for s in self.data],
            "lora": to_dict(self.lora),
            "init_adapter": self.init_adapter,
            "args": args,
            "global_batch": self.global_batch,
            "loss_terms": sorted(self.loop.loss_terms),
        }

    # -- the run ---------------------------------------------------------------------------

    def fit(self, eval_every: int = 0, progress: bool = True) -> TrainedAdapter:
        """Train to the end, resuming from a checkpoint of the same settings in ``run_dir``."""
        accelerator = self.accelerator
        if not self.train_rows:
            raise LingualiftError("No training data loaded; call load_data() before fit().")
        total = self.total_steps()
        self.loop.build_schedule(total)
        state: dict[str, Any] = {"history": [], "evals": [], "tokens": 0, "seconds": 0.0}
        state = self.loop.resume() or state
        self.loop.start_tracking({"train_rows": len(self.train_rows), **self._tracked_settings()})
        if self.loop.step == 0:
            state["evals"].append({"step": 0, "eval_loss": self.evaluate()})
            self.loop.log({"eval/loss": state["evals"][-1]["eval_loss"]}, 0)

        def step(index: int) -> StepRecord:
            out = self.train_step(self.micro_batches(index))
            tokens = out.pop("tokens") * accelerator.num_processes
            return StepRecord(out, {"tokens": tokens})

        def evaluate_now(done: int) -> dict[str, str]:
            if not (eval_every and done % eval_every == 0 and done < total):
                return {}
            eval_loss = self.evaluate()
            state["evals"].append({"step": done, "eval_loss": eval_loss})
            self.loop.log({"eval/loss": eval_loss}, done)
            return {} if eval_loss is None else {"eval": f"{eval_loss:.3f}"}

        self.loop.fit(
            total,
            step,
            state,
            desc="train",
            show=("loss", *self.loop.loss_terms),
            show_progress=progress,
            after_step=evaluate_now,
        )
        state["evals"].append({"step": total, "eval_loss": self.evaluate()})
        self.loop.log({"eval/loss": state["evals"][-1]["eval_loss"]}, total)
        self.loop.end_tracking()
        # Sharded weights are gathered (every process takes part) for the main one to save.
        gathered = accelerator.get_state_dict(self.model) if self.loop.sharded else None
        return TrainedAdapter(
            model=accelerator.unwrap_model(self.model),
            metrics=self._metrics(total, state),
            base_model=self.base_model,
            data=self.data,
            state_dict=gathered,
        )

    def _metrics(self, total: int, state: dict[str, Any]) -> dict[str, Any]:
        losses = [h["loss"] for h in state["history"]]
        tail = losses[-max(1, len(losses) // 10) :] if losses else []
        evals = [e["eval_loss"] for e in state["evals"] if e["eval_loss"] is not None]
        tokens, seconds = state["tokens"], state["seconds"]
        return {
            "steps": total,
            "train_rows": len(self.train_rows),
            "eval_rows": len(self.eval_rows),
            "epochs": round(total * self.global_batch / len(self.train_rows), 3),
            "train_loss_first": losses[0] if losses else None,
            "train_loss_last": sum(tail) / len(tail) if tail else None,
            "eval_loss_before": evals[0] if evals else None,
            "eval_loss": evals[-1] if evals else None,
            "tokens": tokens,
            "train_seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
            "history": state["history"],
            "evals": state["evals"],
        }


def plot_losses(history, evals, path: Path, title: str) -> Path:
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
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
