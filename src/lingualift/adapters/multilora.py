"""Mixed-adapter batches with one gathered matmul per layer instead of one per adapter.

PEFT serves a batch whose rows use different adapters (``adapter_names``) by
looping, in every LoRA layer, over the adapters present: a gather, two small
matmuls and a scatter each. On a CPU, and in decoding where each row adds one
token, those small operations cost more than the arithmetic, so a batch that
mixes four languages decoded at about 0.75x the speed of a batch with one.

:class:`StackedLora` keeps, per LoRA layer, every loaded adapter's matrices
stacked into one tensor (``A: [n, in, r_max]``, ``B: [n, r_max, out]``, the
adapter's scaling folded into ``B``, slot 0 all zeros for rows on the base
model, smaller ranks padded with zeros, which changes nothing). For a batch it
gathers each row's matrices once and adds ``B[row] @ A[row] @ x`` with two batched
matmuls, the idea of punica's and S-LoRA's gathered kernels, on top of the base
layer's output (PEFT's own adapters switched off for the batch). The stacks
are rebuilt when the set of loaded adapters changes (a hot reload).

Plain LoRA on linear layers is stacked: ``nn.Linear`` and, over a quantized
base (QLoRA), bitsandbytes' ``Linear4bit`` and ``Linear8bitLt``: the base product
stays bitsandbytes' own (PEFT's adapters are off for the batch) and the stacked
LoRA product is added from the layer's input, in the adapters' float32 (cast to
the layer's output dtype). A model with other adapter kinds (DoRA, embeddings,
convolutions, other quantizers) keeps PEFT's path; :attr:`StackedLora.reason`
says why, and :meth:`lingualift.adapters.registry.AdapterRegistry.batch` (which
picks the path for every mixed batch, the server's and
:class:`~lingualift.adapters.Router`'s) logs it once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

BASE = "__base__"
"""PEFT's adapter name for a row on the base model (``adapter_names``)."""


def _linear_lora_types() -> tuple[type, ...]:
    """PEFT's LoRA layer classes over a linear base: ``nn.Linear`` and bitsandbytes' layers."""
    from peft.tuners.lora import Linear as LoraLinear

    kinds: list[type] = [LoraLinear]
    try:  # present when bitsandbytes is installed (QLoRA)
        from peft.tuners.lora import bnb as lora_bnb
    except ImportError:
        return tuple(kinds)
    kinds += [getattr(lora_bnb, name) for name in ("Linear8bitLt", "Linear4bit")]
    return tuple(k for k in kinds if isinstance(k, type))


def _lora_linears(model: Any) -> list[Any]:
    kinds = _linear_lora_types()
    return [m for m in model.modules() if isinstance(m, kinds)]


def stacking_problem(model: Any) -> str | None:
    """Why the adapters of ``model`` cannot be stacked (None: plain LoRA on linear layers
    only, with no DoRA or other variants, no LoRA bias, no other layer kinds)."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers:
        return "no LoRA layers are loaded"
    linears = _lora_linears(model)
    if len(layers) != len(linears):
        other = next(m for m in layers if not isinstance(m, _linear_lora_types()))
        return (
            f"an adapter sits on a {type(other).__module__}.{type(other).__name__} layer (only "
            "linear and bitsandbytes 4-/8-bit layers are stacked)"
        )
    for layer in linears:
        if layer.lora_variant:
            kinds = sorted({type(v).__name__ for v in layer.lora_variant.values()})
            names = ", ".join(sorted(layer.lora_variant))
            return f"an adapter uses a LoRA variant ({', '.join(kinds)} in {names})"
        if any(layer.lora_bias.values()):
            return "an adapter has a LoRA bias"
        if layer.fan_in_fan_out:
            return "an adapter targets a fan-in-fan-out (Conv1D) layer"
    return None


class StackedLora:
    """Every adapter of a PEFT model stacked per layer (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        # (name, id(config)) of every loaded adapter: a reload makes a new config.
        self._key: tuple[tuple[str, int], ...] = ()
        self._usable = False
        self.reason: str | None = None
        """Why the loaded adapters cannot be stacked (None when they can)."""
        self._slots: dict[str, int] = {}
        self._stacks: list[tuple[Any, Any, Any]] = []  # (LoRA layer, A, B)
        self._rows: dict[int, tuple[Any, Any]] = {}  # the open batch's gathered (A, B) per layer

    def ready(self) -> bool:
        """Rebuild the stacks if the loaded adapters changed; False when one cannot be stacked."""
        key = tuple((name, id(config)) for name, config in sorted(self.model.peft_config.items()))
        if key != self._key:
            self.reason = stacking_problem(self.model)
            self._usable = self.reason is None
            if self._usable:
                self._build(tuple(name for name, _ in key))
            self._key = key
        return self._usable

    def _build(self, names: tuple[str, ...]) -> None:
        import torch

        self._slots = {name: i + 1 for i, name in enumerate(names)}
        self._stacks = []
        for layer in _lora_linears(self.model):
            present = [n for n in names if n in layer.lora_A]
            if not present:
                continue
            first = layer.lora_A[present[0]].weight
            rank = max(layer.lora_A[n].weight.shape[0] for n in present)
            out_features = layer.lora_B[present[0]].weight.shape[0]
            # Stored transposed (x @ A^T @ B^T), so a gathered slice feeds bmm as it is.
            a = torch.zeros(len(names) + 1, first.shape[1], rank)
            b = torch.zeros(len(names) + 1, rank, out_features)
            for name in present:
                r = layer.lora_A[name].weight.shape[0]
                a[self._slots[name], :, :r] = layer.lora_A[name].weight.detach().T
                b[self._slots[name], :r] = (
                    layer.lora_B[name].weight.detach() * layer.scaling[name]
                ).T
            self._stacks.append(
                (
                    layer,
                    a.to(device=first.device, dtype=first.dtype),
                    b.to(device=first.device, dtype=first.dtype),
                )
            )

    def _gather(self, adapter_names: Sequence[str]) -> dict[int, tuple[Any, Any]]:
        import torch

        unknown = sorted({n for n in adapter_names if n != BASE} - set(self._slots))
        if unknown:
            raise ValueError(f"adapters {unknown} are not loaded")
        slots = torch.tensor([self._slots.get(n, 0) for n in adapter_names])
        return {
            id(layer): (a[slots.to(a.device)], b[slots.to(b.device)])
            for layer, a, b in self._stacks
        }

    @contextlib.contextmanager
    def apply(self, adapter_names: Sequence[str]) -> Iterator[None]:
        """Run the batch with row ``i`` on adapter ``adapter_names[i]`` (``__base__``: none)."""
        import torch

        if not self.ready():
            raise ValueError("the loaded adapters are not all plain LoRA on linear layers")
        # Gathered once per batch, not once per step (regather() when the rows change).
        self._rows = self._gather(adapter_names)
        handles = []

        def add_rows(layer: Any, args: tuple, output: Any) -> Any:
            a, b = self._rows[id(layer)]
            x = args[0]
            flat = x.reshape(x.shape[0], -1, x.shape[-1]).to(a.dtype)
            delta = torch.bmm(torch.bmm(flat, a), b)
            return output + delta.reshape(output.shape).to(output.dtype)

        # PEFT's own adapters are off for the batch: the tuner's switch, not the model's
        # disable_adapter(), which also builds a status report of every layer on each entry.
        tuner = self.model.base_model
        tuner.disable_adapter_layers()
        try:
            for layer, _, _ in self._stacks:
                handles.append(layer.register_forward_hook(add_rows))
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._rows = {}
            tuner.enable_adapter_layers()

    def regather(self, adapter_names: Sequence[str]) -> bool:
        """Inside :meth:`apply`, switch the batch to these rows without leaving it (PEFT's own
        switch walks every layer; this only gathers). False when no batch is open or the
        loaded adapters changed since it opened."""
        if not self._rows or not self.ready():
            return False
        self._rows = self._gather(adapter_names)
        return True
