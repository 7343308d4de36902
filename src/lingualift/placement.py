"""Precision and placement: which base model a verb loads, in which dtype, on which device.

:class:`ModelSettings` is the one set of settings every verb uses for its base model
(``model``, ``dtype``, ``device``, ``attn_implementation``, ``quantization``,
``trust_remote_code``). A job config inherits it, so users type the same flat keys
everywhere::

    lingualift train model=meta-llama/Llama-3.1-8B dtype=bf16 quantization=nf4 ...

``auto`` values are decided by :meth:`ModelSettings.resolve` from the machine's
:class:`DeviceCapabilities` (detected, or given: tests pass a fake GPU): ``device=auto``
is ``cuda:0`` when a CUDA GPU is present and ``cpu`` otherwise (never CUDA on a CPU-only
machine); ``dtype=auto`` is bfloat16 on a GPU that supports it, float16 on one that does
not and float32 on the CPU; ``attn_implementation=auto`` is PyTorch's SDPA, or
FlashAttention-2 where it is installed and the GPU and dtype support it. The result, a
:class:`Placement`, is what :func:`lingualift.models.load_causal_lm` loads with: the weights
are read *in* that dtype (never float32 first), quantized through bitsandbytes for
``nf4``/``int8`` (QLoRA: PEFT's k-bit preparation happens in the trainer).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import re
from typing import Any

from lingualift.config import bookkeeping
from lingualift.embedded import DEFAULT_MODEL
from lingualift.errors import require

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = {
    "fp32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2")
QUANTIZATIONS = ("none", "nf4", "int8")
FLASH_ATTENTION_MIN_CAPABILITY = (8, 0)
"""FlashAttention-2 runs on Ampere (compute capability 8.0) and newer."""
_DEVICE = re.compile(r"^(auto|cpu|cuda(?::(\d+))?)$")


@dataclasses.dataclass(frozen=True)
class DeviceCapabilities:
    """What the machine offers: what ``auto`` settings are decided from (tests pass a fake one)."""

    cuda_devices: int = 0
    """Number of CUDA GPUs torch sees."""
    bf16: tuple[bool, ...] = ()
    """Per CUDA GPU: whether it computes in bfloat16 natively."""
    compute_capability: tuple[tuple[int, int], ...] = ()
    """Per CUDA GPU: its compute capability, e.g. (8, 0) for an A100."""
    memory_bytes: tuple[int, ...] = ()
    """Per CUDA GPU: its total memory in bytes."""
    cpu_memory_bytes: int = 0
    """Memory available to this process on the CPU side, in bytes (0: unknown)."""
    flash_attn: bool = False
    """Whether the flash-attn package (FlashAttention-2) is installed and usable."""
    bitsandbytes: bool = False
    """Whether bitsandbytes (nf4/int8 quantization) is installed."""

    @classmethod
    def detect(cls) -> DeviceCapabilities:
        """The capabilities of this machine."""
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        bf16, capability, memory = [], [], []
        for index in range(count):
            props = torch.cuda.get_device_properties(index)
            capability.append((int(props.major), int(props.minor)))
            memory.append(int(props.total_memory))
            # Ampere and newer compute in bfloat16 natively; torch's own check reads device 0.
            bf16.append(props.major >= 8)
        try:
            import psutil

            cpu_memory = int(psutil.virtual_memory().available)
        except ImportError:  # psutil comes with accelerate; without it the figure is unknown
            cpu_memory = 0
        from transformers.utils import is_flash_attn_2_available

        return cls(
            cuda_devices=count,
            bf16=tuple(bf16),
            compute_capability=tuple(capability),
            memory_bytes=tuple(memory),
            cpu_memory_bytes=cpu_memory,
            flash_attn=bool(count) and is_flash_attn_2_available(),
            bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
        )

    def memory_of(self, device: str) -> int:
        """Total memory of a concrete device (``cpu`` or ``cuda:N``) in bytes; 0 when unknown."""
        if device == "cpu":
            return self.cpu_memory_bytes
        index = int(device.split(":")[1])
        return self.memory_bytes[index] if index < len(self.memory_bytes) else 0


def local_rank() -> int:
    """This process's index on its machine under ``accelerate launch``/torchrun (0 alone)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def fsdp_launched() -> bool:
    """Whether ``accelerate launch`` started this process with an FSDP config."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def parse_bytes(value: str | int | float | None) -> int | None:
    """``24GB``, ``80 GiB``, ``512MB`` or a number of bytes; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        require(value > 0, f"device_memory must be positive, got {value}.")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?b?|b)?\s*", str(value), re.IGNORECASE)
    require(
        match is not None,
        f"device_memory must be a size like 24GB, 80GiB or 512MB; got {value!r}.",
    )
    number, unit = float(match.group(1)), (match.group(2) or "b").lower()
    powers = {"k": 1, "m": 2, "g": 3, "t": 4}
    scale = 1 if unit == "b" else (1024 if "i" in unit else 1000) ** powers[unit[0]]
    require(number > 0, f"device_memory must be positive, got {value!r}.")
    return int(number * scale)


def normalize_dtype(value: Any, key: str = "dtype") -> str:
    """``value`` as one of :data:`DTYPES` (accepting bf16, fp16, fp32 and torch dtypes)."""
    text = str(value).strip().lower().removeprefix("torch.")
    text = DTYPE_ALIASES.get(text, text)
    require(
        text in DTYPES,
        f"{key} must be auto, float32 (fp32), bfloat16 (bf16) or float16 (fp16); got {value!r}.",
    )
    return text


@dataclasses.dataclass
class ModelSettings:
    """The base model a verb loads, and its precision and placement (one class for every verb).

    Job configs inherit it (flat keys: ``model=... dtype=... device=... quantization=...``);
    a subclass that defines ``__post_init__`` calls ``super().__post_init__()``.
    """

    model: str | None = DEFAULT_MODEL
    """Base model: an embedded name (embedded:gemma-3-270m), a hub id or a local folder."""
    dtype: str = "auto"
    """Weight dtype: auto (bfloat16 on a GPU that supports it, float16 on one that does not,
    float32 on the CPU), float32, bfloat16 or float16 (bf16, fp16, fp32 also accepted). The
    weights are loaded in it; LoRA parameters stay float32. With quantization it is the compute
    dtype of the quantized layers and the dtype of the layers that stay unquantized."""
    device: str = "auto"
    """Where the model runs: auto (cuda:0 when a CUDA GPU is present, else cpu; under
    accelerate launch each process its own GPU, cuda:LOCAL_RANK), cpu, cuda or cuda:N."""
    attn_implementation: str = "auto"
    """Attention kernel: auto (PyTorch's SDPA; FlashAttention-2 when flash-attn is installed and
    the GPU (Ampere or newer) and dtype (bf16/fp16) support it), sdpa, eager or
    flash_attention_2."""
    quantization: str = "none"
    """Quantize the base model's linear layers with bitsandbytes: none, nf4 (4-bit NormalFloat
    with double quantization, QLoRA) or int8 (LLM.int8()); needs pip install 'lingualift[qlora]'.
    Adapters trained on a quantized base load unchanged on the unquantized one."""
    trust_remote_code: bool = False
    """Run model code shipped with a model folder or hub repo (auto_map in its config.json).
    Off by default: such code runs with your permissions; read it before turning this on."""
    device_memory: str | None = bookkeeping(None)
    """Memory the job may use on its device, e.g. 24GB or 80GiB, which the pre-load check plans
    against (default: the device's own: a GPU's total memory, the CPU's available memory). Set
    it to share a card, or to see what a smaller one would refuse."""

    def __post_init__(self) -> None:
        # None: a job decides the model later (e.g. a ShifCon folder's base); loading needs one.
        require(
            self.model is None or (isinstance(self.model, str) and self.model.strip()),
            "model must name a base model: embedded:gemma-3-270m, a hub id or a local folder.",
        )
        self.dtype = normalize_dtype(self.dtype)
        device = "auto" if self.device is None else str(self.device).strip().lower()
        require(
            _DEVICE.match(device) is not None,
            f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}.",
        )
        self.device = device
        attention = str(self.attn_implementation).strip().lower()
        require(
            attention in ATTENTION,
            f"attn_implementation must be one of {', '.join(ATTENTION)}; got "
            f"{self.attn_implementation!r}.",
        )
        self.attn_implementation = attention
        quantization = str(self.quantization).strip().lower()
        quantization = "none" if quantization in ("", "null", "false", "no") else quantization
        require(
            quantization in QUANTIZATIONS,
            f"quantization must be none, nf4 or int8; got {self.quantization!r}.",
        )
        self.quantization = quantization
        require(
            isinstance(self.trust_remote_code, bool),
            f"trust_remote_code must be true or false, got {self.trust_remote_code!r}.",
        )
        parse_bytes(self.device_memory)  # a bad size fails here, before any model is read

    def model_settings(self, model: str | None = None) -> ModelSettings:
        """Just these settings (from a job config that inherits them), with ``model`` if given."""
        return ModelSettings(**{**self.model_kwargs(), "model": model or self.model})

    def model_kwargs(self) -> dict[str, Any]:
        """These settings as keyword arguments: how a job builds another config (a training
        stage's) on the same base, precision and placement."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelSettings)}

    def resolve(self, capabilities: DeviceCapabilities | None = None) -> Placement:
        """Turn every ``auto`` into a concrete choice for this machine (or for ``capabilities``).

        Refuses, in one sentence, what the machine cannot do: CUDA without a GPU, a GPU
        index that does not exist, quantization without bitsandbytes, FlashAttention-2
        where it cannot run.
        """
        require(
            self.model is not None,
            "No base model to load; set model=embedded:gemma-3-270m, a hub id or a local folder.",
        )
        caps = capabilities if capabilities is not None else DeviceCapabilities.detect()
        notes: list[str] = []
        device = self._resolve_device(caps, notes)
        dtype = self._resolve_dtype(caps, device, notes)
        attention = self._resolve_attention(caps, device, dtype, notes)
        if self.quantization != "none":
            require(
                caps.bitsandbytes,
                f"quantization={self.quantization} needs bitsandbytes; pip install "
                "'lingualift[qlora]' or set quantization=none.",
            )
        return Placement(
            model=self.model,
            dtype=dtype,
            device=device,
            attn_implementation=attention,
            quantization=self.quantization,
            trust_remote_code=self.trust_remote_code,
            notes=tuple(notes),
        )

    def _resolve_device(self, caps: DeviceCapabilities, notes: list[str]) -> str:
        # Under `accelerate launch` (torchrun) each process takes its own GPU: LOCAL_RANK.
        rank = local_rank()
        if self.device == "auto":
            device = f"cuda:{rank % caps.cuda_devices}" if caps.cuda_devices else "cpu"
            notes.append(
                f"device=auto: {device} ("
                + ("a CUDA GPU is present" if caps.cuda_devices else "no CUDA GPU")
                + (f", process {rank} of a launch" if rank and caps.cuda_devices else "")
                + ")"
            )
            return device
        if self.device == "cpu":
            return "cpu"
        require(
            caps.cuda_devices > 0,
            f"device={self.device} but this machine has no CUDA GPU; use device=auto or "
            "device=cpu.",
        )
        index = int(self.device.split(":")[1]) if ":" in self.device else rank
        require(
            index < caps.cuda_devices,
            f"device={self.device} but this machine has {caps.cuda_devices} CUDA GPU(s) "
            f"(cuda:0 to cuda:{caps.cuda_devices - 1}); pick one of those or device=auto.",
        )
        return f"cuda:{index}"

    def _resolve_dtype(self, caps: DeviceCapabilities, device: str, notes: list[str]) -> str:
        if device == "cpu":
            if self.dtype == "auto":
                notes.append("dtype=auto: float32 (on the CPU)")
                return "float32"
            return self.dtype
        index = int(device.split(":")[1])
        bf16 = caps.bf16[index] if index < len(caps.bf16) else False
        if self.dtype == "auto":
            dtype = "bfloat16" if bf16 else "float16"
            notes.append(
                f"dtype=auto: {dtype} ({device} "
                + ("computes in bfloat16" if bf16 else "has no native bfloat16")
                + ")"
            )
            return dtype
        if self.dtype == "bfloat16" and not bf16:
            logger.warning(
                "%s has no native bfloat16 (compute capability below 8.0): bf16 runs slowly "
                "there; dtype=float16 (or auto) is the usual choice.",
                device,
            )
        return self.dtype

    def _resolve_attention(
        self, caps: DeviceCapabilities, device: str, dtype: str, notes: list[str]
    ) -> str:
        capability = (0, 0)
        if device != "cpu":
            index = int(device.split(":")[1])
            if index < len(caps.compute_capability):
                capability = caps.compute_capability[index]
        flash_ok = (
            caps.flash_attn
            and device != "cpu"
            and capability >= FLASH_ATTENTION_MIN_CAPABILITY
            and dtype in ("bfloat16", "float16")
        )
        if self.attn_implementation == "auto":
            attention = "flash_attention_2" if flash_ok else "sdpa"
            notes.append(f"attn_implementation=auto: {attention}")
            return attention
        if self.attn_implementation == "flash_attention_2":
            require(
                flash_ok,
                "attn_implementation=flash_attention_2 needs the flash-attn package, a CUDA GPU of "
                "compute capability 8.0 or newer and dtype bfloat16 or float16; use "
                "attn_implementation=auto (or sdpa).",
            )
        return self.attn_implementation


@dataclasses.dataclass(frozen=True)
class Placement:
    """Concrete precision and placement (no ``auto`` left): what the loader uses."""

    model: str
    """The model spec."""
    dtype: str
    """float32, bfloat16 or float16."""
    device: str
    """cpu or cuda:N."""
    attn_implementation: str
    """sdpa, eager or flash_attention_2."""
    quantization: str
    """none, nf4 or int8."""
    trust_remote_code: bool
    """Whether model code shipped with the model may run."""
    notes: tuple[str, ...] = ()
    """Why each ``auto`` became what it is (for logs)."""

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    @property
    def bytes_per_param(self) -> int:
        """Bytes of one unquantized weight in :attr:`dtype`."""
        return DTYPE_BYTES[self.dtype]

    def describe(self) -> str:
        quantized = f", {self.quantization} quantized" if self.quantization != "none" else ""
        return f"{self.dtype}{quantized} on {self.device}, {self.attn_implementation} attention"

    def quantization_config(self) -> Any:
        """transformers' ``BitsAndBytesConfig`` for :attr:`quantization` (None for none).

        nf4 follows the QLoRA paper: 4-bit NormalFloat with double quantization, computing
        in :attr:`dtype`; int8 is LLM.int8(). The output head stays unquantized (transformers'
        default), as do embeddings and norms.
        """
        if self.quantization == "none":
            return None
        from transformers import BitsAndBytesConfig

        if self.quantization == "nf4":
            # FSDP shards flat parameters of one dtype: the packed 4-bit weights are stored in
            # the compute dtype there (PEFT's FSDP + QLoRA guide), in uint8 otherwise.
            storage = {"bnb_4bit_quant_storage": self.torch_dtype} if fsdp_launched() else {}
            return BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=self.torch_dtype,
                **storage,
            )
        return BitsAndBytesConfig(load_in_8bit=True)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``.

        Safetensors only (pickled weights can run code when loaded), model code only when
        trusted, weights read straight into :attr:`dtype` and onto :attr:`device` (no float32
        copy first; a quantized model is quantized while it loads).
        """
        kwargs: dict[str, Any] = {
            "dtype": self.torch_dtype,
            "trust_remote_code": self.trust_remote_code,
            "use_safetensors": True,
        }
        if self.attn_implementation != "sdpa":
            # sdpa is transformers' own default; leaving it unset keeps its fallback to eager
            # for the few architectures without SDPA support.
            kwargs["attn_implementation"] = self.attn_implementation
        quantization = self.quantization_config()
        if quantization is not None:
            kwargs["quantization_config"] = quantization
        # Under FSDP the weights load on the CPU (transformers reads them on the first process
        # only) and FSDP moves each process's shard to its GPU: no device map.
        if (quantization is not None or self.device != "cpu") and not fsdp_launched():
            kwargs["device_map"] = {"": self.device}
        return kwargs


def as_model_settings(
    model: str | ModelSettings, dtype: str | None = None, device: str | None = None
) -> ModelSettings:
    """``model`` as :class:`ModelSettings` (a spec string gets ``dtype``/``device``, else auto)."""
    if isinstance(model, ModelSettings):
        if dtype is not None or device is not None:
            raise TypeError("Pass dtype and device inside the ModelSettings, not beside it.")
        return model
    return ModelSettings(model=model, dtype=dtype or "auto", device=device or "auto")
