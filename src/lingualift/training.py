"""The training loop every trainer shares: its arguments, optimizer, schedule, checkpoints.

LoRA adapters (:mod:`lingualift.adapters.trainer`), ShifCon
(:mod:`lingualift.shifcon.trainer`) and continual updates differ in their data,
their loss and what they write at the end; they share one set of knobs,
:class:`TrainingArgs` (the same names everywhere), :class:`LoraSettings` for
the adapter's shape, and everything between a micro-batch and an updated model,
:class:`TrainingLoop`:

- AdamW over the trainable parameters and transformers' ``get_scheduler``;
- one optimizer step over micro-batches (gradient accumulation, accelerate's
  backward, DDP ``no_sync``, clipping) given a loss callable, plus any extra
  loss terms added with :meth:`TrainingLoop.add_loss_term` (e.g. a penalty that
  keeps the weights near a previous version);
- atomic checkpoints ``run_dir/checkpoints/step-NNNNNN/`` holding the trainable
  parameters by name (``weights.safetensors``: a LoRA adapter's matrices or,
  for full fine-tuning, every parameter) and ``trainer_state.pt`` (optimizer,
  scheduler, RNG states, the caller's state, a fingerprint of the settings a
  resume must share), of which the newest ``keep_checkpoints`` stay;
- the fit loop: resume, progress bar, loss history, ``save_every``;
- experiment trackers through accelerate (``report_to``): TensorBoard by
  default when it is installed, W&B or MLflow on request, ``"none"`` to turn
  them off, each writing where :mod:`lingualift.tracking` says (the config, then
  the tracker's own environment variables, then the run's logs/ folder). Every
  logged value is the mean over processes (``accelerator.reduce``), not rank 0's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from lingualift.atomic import atomic_dir
from lingualift.config import bookkeeping
from lingualift.errors import LingualiftError, first_line, require
from lingualift.tracking import (  # noqa: F401  (TRACKERS and REPORT_TO: public names here too)
    REPORT_TO,
    TRACKERS,
    TrackerSettings,
    build_trackers,
    resolve_trackers,
)

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^step-(\d+)$")
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
PRECISIONS = ("auto", *MIXED_PRECISION)


def base_compute_dtype(model: Any) -> Any:
    """The dtype a (possibly quantized) base model computes its frozen layers in.

    An nf4 base computes in its quantization's compute dtype; an int8 base (LLM.int8()
    multiplies in float16 but returns its input's dtype) and any other follows its
    unquantized weights.
    """
    import torch

    quantization = getattr(getattr(model, "config", None), "quantization_config", None)
    if getattr(model, "is_loaded_in_4bit", False) and quantization is not None:
        compute = getattr(quantization, "bnb_4bit_compute_dtype", None)
        if isinstance(quantization, dict):
            compute = quantization.get("bnb_4bit_compute_dtype")
        if isinstance(compute, str):
            compute = getattr(torch, compute.removeprefix("torch."), None)
        return compute if isinstance(compute, torch.dtype) else torch.float32
    frozen = [p.dtype for p in model.parameters() if p.is_floating_point() and not p.requires_grad]
    floating = frozen or [p.dtype for p in model.parameters() if p.is_floating_point()]
    return floating[0] if floating else torch.float32


def autocast_precision(precision: str, model: Any) -> str:
    """The concrete autocast of a run: ``precision``, or for ``auto`` the base's compute dtype.

    float16 autocast needs a GPU (loss scaling on CUDA); on the CPU ``auto`` never picks it.
    """
    import torch

    if precision != "auto":
        compute = base_compute_dtype(model)
        if precision == "fp32" and compute == torch.float16:
            logger.warning(
                "The base computes in float16 and precision=fp32 applies no loss scaling: small "
                "gradients may underflow; precision=auto (or fp16) scales the loss."
            )
        return precision
    compute = base_compute_dtype(model)
    on_gpu = any(p.device.type == "cuda" for p in model.parameters())
    if compute == torch.bfloat16:
        return "bf16"
    if compute == torch.float16 and on_gpu:
        return "fp16"
    return "fp32"


def process_state() -> Any:
    """accelerate's ``PartialState`` of this process: alone, or one of those ``accelerate
    launch`` started.

    On a machine without a GPU, launched processes join one CPU process group (gloo):
    accelerate does that only when asked for the CPU, which its GPU launch configs
    (``recipes/accelerate/``) do not do. Every lingualift entry point asks here first.
    """
    import os

    import torch
    from accelerate import PartialState

    launched = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    gpu = torch.cuda.is_available()
    require(
        gpu or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true",
        "FSDP runs on GPUs only (accelerate's FSDP plugin needs a CUDA or other accelerator "
        "device); on a machine without one launch with recipes/accelerate/ddp.yaml.",
    )
    return PartialState(cpu=launched and not gpu)


def _allow_precision(mixed_precision: str) -> None:
    """Let one process train runs of different precision (a bf16 base after a float32 one).

    accelerate keeps a process-wide state whose mixed precision cannot change once set;
    in a single process (not under ``accelerate launch``) lingualift resets it between runs
    of different precision, as accelerate's own tests do.
    """
    from accelerate.state import AcceleratorState

    if not AcceleratorState._shared_state:  # nothing set yet
        return
    if AcceleratorState().mixed_precision == mixed_precision:
        return
    if process_state().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=False)


def prepare_kbit_model(model: Any, gradient_checkpointing: bool) -> Any:
    """PEFT's k-bit preparation of a bitsandbytes-quantized base, before LoRA goes on (QLoRA).

    ``peft.prepare_model_for_kbit_training`` freezes the base, casts its unquantized
    float16/bfloat16 parameters (norms, embeddings, output head) to float32 for stable
    training and, with checkpointing, makes the inputs require gradients. A model that is
    not quantized is returned as it is.
    """
    if not (
        getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    ):
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def lora_aware_wrap_policy(accelerator: Any, model: Any) -> None:
    """Under FSDP, wrap a PEFT model as PEFT's FSDP guide does: every LoRA leaf its own FSDP
    unit beside the decoder layers (``peft.utils.other.fsdp_auto_wrap_policy``), so trainable
    and frozen weights never share a flat parameter (``fsdp_use_orig_params: false``)."""
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None or not hasattr(model, "peft_config"):
        return
    if getattr(plugin, "fsdp_version", 1) != 1:  # FSDP2 shards per parameter: no flat params
        return
    from peft.utils.other import fsdp_auto_wrap_policy

    require(
        not plugin.use_orig_params,
        "LoRA under FSDP needs fsdp_use_orig_params: false in the accelerate config (PEFT's "
        "wrap policy keeps LoRA weights in their own flat parameters); use "
        "recipes/accelerate/fsdp.yaml.",
    )
    plugin.auto_wrap_policy = fsdp_auto_wrap_policy(model)


def upcast_trainable(model: Any) -> int:
    """Keep every trainable parameter in float32 (PEFT's advice for mixed precision).

    PEFT already creates LoRA weights in float32 on a bfloat16/float16 base
    (``autocast_adapter_dtype``); this also covers adapters loaded from a folder saved
    in half precision and any other trainable module. Returns how many were cast.
    """
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != torch.float32:
            param.data = param.data.float()
            cast += 1
    return cast


@dataclasses.dataclass
class TrainingArgs(TrackerSettings):
    """How to optimise: the same knobs, with the same names, for every trainer (and where the
    curves go: :class:`~lingualift.tracking.TrackerSettings`)."""

    lr: float = 2e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    """Learning-rate schedule after warm-up (transformers' get_scheduler names)."""
    warmup_steps: float = 0.0
    """Linear warm-up from 0 to lr: a number of steps (1 or more) or a fraction of all steps
    (below 1, e.g. 0.03)."""
    max_steps: int = 0
    """Number of optimizer steps; 0 derives it from epochs."""
    epochs: float = 1.0
    """Passes over the training examples, used when max_steps is 0."""
    batch_size: int = 8
    """Sequences (or pairs) per micro-batch on each process."""
    grad_accum: int = 1
    """Micro-batches accumulated into one optimizer step."""
    max_length: int = 512
    """Longest sequence in tokens; longer examples are truncated (or split when packing)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm; 0 turns clipping off."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast (accelerate's mixed precision) of the forward and backward passes: auto (follow
    the base: bf16 for bfloat16 weights or an nf4 base computing in bfloat16, fp16 with loss
    scaling for float16 weights on a GPU, none for float32 weights, so fp32 on the CPU), fp32
    (none: the base computes in the dtype its weights were loaded in, LoRA in float32), bf16 or
    fp16 (with loss scaling). The weights' own dtype is the model's dtype setting, not this
    one."""
    # Checkpoint cadence, gradient checkpointing and logging change neither the weights nor a
    # resumed run's result (bookkeeping: kept out of fingerprints, so a resume may change them).
    gradient_checkpointing: bool | None = bookkeeping(None)
    """Recompute activations in the backward pass (less memory, more compute; the same forward
    pass is recomputed, so the weights do not change): true, false, or unset (auto): the verbs'
    pre-load check turns it on when the job fits the device only with it (and says so in the
    log), off otherwise."""
    save_every: int = bookkeeping(0)
    """Write a resumable checkpoint every this many steps (0: never; an interrupted run then
    restarts from step 0)."""
    keep_checkpoints: int = bookkeeping(2)
    """How many recent checkpoints to keep."""
    log_every: int = bookkeeping(1)
    """Record the training loss every this many steps."""
    seed: int = 0
    """Seed of the data order, the adapter initialisation and dropout."""

    def __post_init__(self) -> None:
        at_least_one = ("batch_size", "grad_accum", "max_length", "keep_checkpoints", "log_every")
        for name in at_least_one:
            require(
                getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}."
            )
        for name in ("max_steps", "save_every", "warmup_steps", "weight_decay", "max_grad_norm"):
            require(
                getattr(self, name) >= 0, f"{name} must not be negative, got {getattr(self, name)}."
            )
        require(self.lr > 0, f"lr must be positive, got {self.lr}.")
        require(
            self.max_steps > 0 or self.epochs > 0,
            "Set max_steps to a positive number or epochs above 0.",
        )
        require(
            self.warmup_steps < 1 or self.warmup_steps == int(self.warmup_steps),
            f"warmup_steps is a whole number of steps or a fraction below 1, got {self.warmup_steps}.",
        )
        super().__post_init__()  # report_to

    def warmup(self, total_steps: int) -> int:
        """Warm-up length in steps for a run of ``total_steps``."""
        if self.warmup_steps < 1:
            return round(self.warmup_steps * total_steps)
        return min(int(self.warmup_steps), total_steps)

    def total_steps(self, micro_batches_per_epoch: int) -> int:
        """``max_steps``, or enough steps for ``epochs`` over the given micro-batches."""
        if self.max_steps > 0:
            return self.max_steps
        return max(1, math.ceil(self.epochs * micro_batches_per_epoch / self.grad_accum))


@dataclasses.dataclass
class LoraSettings:
    """The LoRA adapter itself (what PEFT's ``LoraConfig`` receives)."""

    r: int = 8
    """Rank of the low-rank update."""
    alpha: float = 16.0
    """Scaling numerator: the update is multiplied by ``alpha / r``."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training."""
    target_modules: str = "all-linear"
    """Which layers get an adapter: 'all-linear' (every linear layer but the output head)
    or a comma-separated list of module names such as 'q_proj,v_proj'."""

    def __post_init__(self) -> None:
        require(self.r >= 1, f"lora.r must be at least 1, got {self.r}.")
        require(self.alpha > 0, f"lora.alpha must be positive, got {self.alpha}.")
        require(0 <= self.dropout < 1, f"lora.dropout must be in [0, 1), got {self.dropout}.")

    def peft_config(self):
        """The equivalent ``peft.LoraConfig`` for a causal LM."""
        from peft import LoraConfig, TaskType

        targets: str | list[str] = self.target_modules
        if targets != "all-linear":
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            task_type=TaskType.CAUSAL_LM,
        )


Backward = Callable[[Any], None]
LossFn = Callable[[Any, Backward], dict[str, Any]]
"""``loss_fn(micro_batch, backward) -> {name: tensor}``: runs the forward pass, calls
``backward(loss)`` exactly once and returns the values to report (at least ``loss``)."""


@dataclasses.dataclass
class StepRecord:
    """What one step of :meth:`TrainingLoop.fit` reports."""

    logged: dict[str, Any]
    """The history entry of the step (the loop adds ``step``)."""
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    """Added to the run state under the same keys; the progress bar shows each per second."""


class TrainingLoop:
    """Optimizer, schedule, steps and checkpoints of one run over ``model``'s trainable parameters.

    ``fingerprint`` is called when a checkpoint is written or read (a trainer may
    only know its data later than its model); ``settings`` names what it covers
    in the refusal to resume from a checkpoint made with other settings.
    """

    def __init__(
        self,
        model: Any,
        args: TrainingArgs,
        *,
        run_dir: str | Path,
        fingerprint: Callable[[], Any],
        settings: str,
        accelerator: Any = None,
        log_dir: str | Path | None = None,
        project: str = "lingualift",
    ) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import DistributedType

        self.args = args
        self.log_dir = Path(log_dir) if log_dir is not None else Path(run_dir) / "logs"
        self.project = project
        self.trackers: list[Any] = []
        if accelerator is None:  # an accelerator brought by the caller brings its own trackers
            names = resolve_trackers(args.report_to)
            run_name = Path(run_dir).resolve().name
            self.trackers = build_trackers(
                names, args, self.log_dir, run_name=run_name, project=project
            )
        self.precision = autocast_precision(args.precision, model)
        if accelerator is None:
            process_state()  # a launched process on a machine without a GPU joins over gloo
            _allow_precision(MIXED_PRECISION[self.precision])
        self.accelerator = accelerator = accelerator or Accelerator(
            mixed_precision=MIXED_PRECISION[self.precision],
            log_with=self.trackers or None,
            project_dir=str(self.log_dir),
        )
        if accelerator.log_with and not self.trackers:  # an accelerator brought its own
            self.trackers = list(accelerator.log_with)
        self._tracking = False
        self.checkpoint_dir = Path(run_dir) / "checkpoints"
        self.fingerprint = fingerprint
        self.settings = settings
        self.params = [p for p in model.parameters() if p.requires_grad]
        require(self.params, "The model has no trainable parameters; nothing to train.")
        self._torch_optimizer = torch.optim.AdamW(
            self.params, lr=args.lr, weight_decay=args.weight_decay
        )
        self.sharded = accelerator.distributed_type == DistributedType.FSDP
        if self.sharded:
            require(
                not args.save_every,
                "Resumable checkpoints are not written under FSDP yet; set train.save_every=0 "
                "(an interrupted run starts again from step 0) or train with DDP "
                "(recipes/accelerate/ddp.yaml).",
            )
            lora_aware_wrap_policy(accelerator, model)
        self.model, self.optimizer = accelerator.prepare(model, self._torch_optimizer)
        # accelerate's clip_grad_norm_ and optimizer step re-check installed packages on every
        # call (file-system look-ups); plain and DDP runs without a loss scaler have nothing for
        # them to do, so they use torch's clipping and the optimizer directly.
        self._plain = accelerator.scaler is None and accelerator.distributed_type in (
            DistributedType.NO,
            DistributedType.MULTI_CPU,
            DistributedType.MULTI_GPU,
        )
        self.scheduler: Any = None
        self.loss_terms: dict[str, Callable[[Any], Any]] = {}
        self.step = 0
        """Optimizer steps done by :meth:`fit` (or restored by :meth:`resume`)."""

    def add_loss_term(self, name: str, term: Callable[[Any], Any]) -> None:
        """Add ``term(model)`` (a scalar tensor) to every step's loss, reported as ``name``.

        This is how a penalty joins training without another loop: L2-SP or EWC
        toward a previous version's weights, a regulariser on the adapter.
        """
        require(name not in ("loss",), f"{name!r} is taken; name the loss term otherwise.")
        self.loss_terms[name] = term

    def build_schedule(self, total_steps: int) -> None:
        """The learning-rate schedule of ``args`` over ``total_steps``."""
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            self.args.schedule,
            optimizer=self._torch_optimizer,
            num_warmup_steps=self.args.warmup(total_steps),
            num_training_steps=total_steps,
        )

    # -- one optimizer step ----------------------------------------------------------------

    def train_step(self, micro_batches: Sequence[Any], loss_fn: LossFn) -> dict[str, float]:
        """One optimizer step over ``micro_batches``; returns each reported value's mean.

        The loss callable runs the backward pass itself, through the ``backward`` it
        is handed, instead of returning a loss for the loop to differentiate: ShifCon
        must run it inside its shift context, because gradient checkpointing
        recomputes the forward pass during the backward pass and the recomputation
        has to see the same hooks. ``backward`` divides the loss by the number of
        micro-batches (accumulation then averages) and goes through accelerate (loss
        scaling, DDP).
        """
        import torch

        accelerator, model = self.accelerator, self.model
        max_norm = self.args.max_grad_norm
        n = len(micro_batches)
        totals: dict[str, Any] = {}
        for i, batch in enumerate(micro_batches):
            calls = 0
            terms: dict[str, Any] = {}

            def backward(loss: Any, terms: dict[str, Any] = terms) -> None:
                nonlocal calls
                calls += 1
                for name, term in self.loss_terms.items():
                    terms[name] = term(model)
                    loss = loss + terms[name]
                accelerator.backward(loss / n if n > 1 else loss)

            # Skip the gradient all-reduce on all but the last micro-batch (DDP).
            sync = accelerator.no_sync(model) if i < n - 1 else contextlib.nullcontext()
            with sync:
                values = loss_fn(batch, backward)
            if calls != 1:
                raise RuntimeError(f"The loss callable called backward {calls} times, not once.")
            for key, value in {**values, **terms}.items():
                totals[key] = totals.get(key, 0) + value.detach()
        if max_norm > 0:
            if self._plain:
                torch.nn.utils.clip_grad_norm_(self.params, max_norm)
            else:  # sharded / scaled gradients need accelerate's version
                accelerator.clip_grad_norm_(self.params, max_norm)
        optimizer = self._torch_optimizer if self._plain else self.optimizer
        optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        keys = list(totals)
        if accelerator.num_processes > 1 and keys:
            # Report the mean over processes, not this rank's own values.
            stacked = torch.stack([totals[k].float().reshape(()) for k in keys])
            totals = dict(zip(keys, accelerator.reduce(stacked, reduction="mean"), strict=True))
        return {key: float(total) / n for key, total in totals.items()}

    # -- trackers --------------------------------------------------------------------------

    def start_tracking(self, config: dict[str, Any] | None = None) -> None:
        """Open the trackers (once); ``config`` is recorded as the run's hyperparameters."""
        if not self.trackers or self._tracking:
            return
        if self.accelerator.is_main_process:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        hparams = {
            k: v
            for k, v in {**(config or {}), **dataclasses.asdict(self.args)}.items()
            if isinstance(v, int | float | str | bool)
        }
        self.accelerator.init_trackers(self.project, config=hparams)
        self._tracking = True

    def log(self, values: dict[str, Any], step: int) -> None:
        """Send numeric ``values`` to the trackers at ``step`` (main process; no-op without)."""
        if not self._tracking:
            return
        numbers = {
            k: float(v)
            for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        if numbers:
            self.accelerator.log(numbers, step=step)

    def end_tracking(self) -> None:
        """Flush and close the trackers."""
        if self._tracking:
            self.accelerator.end_training()
            self._tracking = False

    # -- the fit loop ----------------------------------------------------------------------

    def fit(
        self,
        total_steps: int,
        step_fn: Callable[[int], StepRecord],
        state: dict[str, Any],
        *,
        desc: str,
        show: Sequence[str] = ("loss",),
        show_progress: bool = True,
        after_step: Callable[[int], dict[str, str]] | None = None,
    ) -> None:
        """Run steps ``self.step .. total_steps - 1`` of ``step_fn`` (0-based step in).

        ``state`` (updated in place, and what checkpoints carry) needs ``history``
        and ``seconds``, plus a key for each of the records' ``counts``.
        ``after_step`` gets the number of steps done and returns extra progress-bar
        fields (a trainer's periodic evaluation). Logged steps also go to the trackers
        (opened here if the trainer has not); the trainer closes them with
        :meth:`end_tracking` once its last value is logged.
        """
        from tqdm.auto import tqdm

        save_every, log_every = self.args.save_every, self.args.log_every
        progress = tqdm(
            total=total_steps,
            initial=self.step,
            desc=desc,
            unit="step",
            disable=not (show_progress and self.accelerator.is_local_main_process),
        )
        self.start_tracking()
        for step in range(self.step, total_steps):
            began = time.perf_counter()
            record = step_fn(step)
            seconds = time.perf_counter() - began
            self.step = done = step + 1
            state["seconds"] += seconds
            if done % max(1, log_every) == 0 or done == total_steps:
                state["history"].append({"step": done, **record.logged})
                logged = {f"train/{k}": v for k, v in record.logged.items()}
                if self.scheduler is not None and "lr" not in record.logged:
                    logged["train/lr"] = self.scheduler.get_last_lr()[0]
                self.log(logged, done)
            postfix = {key: f"{record.logged[key]:.3f}" for key in show}
            for key, count in record.counts.items():
                state[key] += count
                postfix[f"{key}/s"] = f"{count / seconds:.0f}"
            if after_step is not None:
                postfix.update(after_step(done))
            progress.set_postfix(postfix)
            progress.update(1)
            if save_every and done % save_every == 0 and done < total_steps:
                self.save_checkpoint(done, state)
        progress.close()

    # -- checkpoints -----------------------------------------------------------------------

    def _trainable(self) -> dict[str, Any]:
        unwrapped = self.accelerator.unwrap_model(self.model)
        return {name: p for name, p in unwrapped.named_parameters() if p.requires_grad}

    def _checkpoints(self) -> list[Path]:
        if not self.checkpoint_dir.is_dir():
            return []
        found = [p for p in self.checkpoint_dir.iterdir() if _CHECKPOINT.match(p.name)]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> Path:
        """Write a resumable checkpoint of ``step`` (atomically) and prune old ones."""
        import torch
        from safetensors.torch import save_file

        folder = self.checkpoint_dir / f"step-{step:06d}"
        if self.accelerator.is_main_process:
            weights = {k: v.detach().cpu().contiguous() for k, v in self._trainable().items()}
            with atomic_dir(folder, overwrite=True) as tmp:
                save_file(weights, str(tmp / "weights.safetensors"))
                torch.save(
                    {
                        "step": step,
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                        "rng": _rng_state(),
                        "state": state,
                        "fingerprint": self.fingerprint(),
                    },
                    tmp / "trainer_state.pt",
                )
            for old in self._checkpoints()[: -self.args.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return folder

    def resume(self) -> dict[str, Any] | None:
        """Restore the latest checkpoint and its step; returns its state (None without one)."""
        import torch
        from safetensors.torch import load_file

        checkpoints = self._checkpoints()
        if not checkpoints:
            return None
        folder = checkpoints[-1]
        try:
            # weights_only: a checkpoint is data, and unpickling anything else could run code.
            saved = torch.load(folder / "trainer_state.pt", weights_only=True)
            weights = load_file(str(folder / "weights.safetensors"))
        except Exception as exc:
            raise LingualiftError(
                f"Checkpoint {folder} is unreadable or not a lingualift checkpoint "
                f"({first_line(exc)}); "
                "delete it to resume from an older one or start afresh."
            ) from None
        if not isinstance(saved, dict) or not {"step", "optimizer", "rng", "state"} <= set(saved):
            raise LingualiftError(
                f"Checkpoint {folder} is not a lingualift checkpoint (keys missing); delete it."
            )
        if saved.get("fingerprint") != self.fingerprint():
            raise LingualiftError(
                f"Checkpoint {folder} was made with other {self.settings}; "
                "resume with the original settings or use a new output folder."
            )
        trainable = self._trainable()
        with torch.no_grad():
            for name, value in weights.items():
                trainable[name].copy_(value)
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        self.step = saved["step"]
        logger.info("Resumed from %s", folder)
        return saved["state"]


def _rng_state() -> dict[str, Any]:
    """The RNG states as tensors and plain lists, which ``torch.load(weights_only=True)`` reads."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }


def _set_rng_state(saved: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(saved["torch"])
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = saved["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
