"""ShifCon: shift non-dominant languages into the dominant subspace, and align them there.

- :mod:`~lingualift.shifcon.vectors`: per-language, per-layer mean hidden states
  (:class:`LanguageVectors`), streamed from a corpus, saved as safetensors.
- :mod:`~lingualift.shifcon.area`: the subspace-distance curve and the layer area ``[a, b]``.
- :mod:`~lingualift.shifcon.hooks` and :class:`ShifCon`: the shift hooks as a
  context manager around ``forward`` and ``generate``.
- :mod:`~lingualift.shifcon.loss` and :mod:`~lingualift.shifcon.trainer`: the
  multilingual contrastive loss and ``L = alpha * L_gen + beta * L_con`` training.
- :mod:`~lingualift.shifcon.export`: lm-evaluation-harness ``steered`` files.
"""

from lingualift.shifcon.core import CONFIG_FILE, ShifCon
from lingualift.shifcon.hooks import shift_hooks
from lingualift.shifcon.vectors import (
    VECTORS_FILE,
    LanguageVectors,
    compute_language_vectors,
    model_signature,
)

__all__ = [
    "CONFIG_FILE",
    "VECTORS_FILE",
    "LanguageVectors",
    "ShifCon",
    "compute_language_vectors",
    "model_signature",
    "shift_hooks",
]
