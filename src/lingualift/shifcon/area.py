"""The layer area ``[a, b]``: where non-dominant subspaces sit closest to the dominant one.

For each hidden-state index ``i`` and language ``l``, the subspace ``U_l[i]``
is the span of the top ``k`` principal directions of ``l``'s centred sentence
representations (stored with the vectors). Its distance to the dominant
language's subspace is the projection distance of principal-angle theory,
normalised to ``[0, 1]``::

    d(U, V) = ||U U^T - V V^T||_F / sqrt(2k) = sqrt(sum_j sin^2 theta_j / k)

where ``cos theta_j`` are the singular values of ``U^T V``. The curve is the
mean of ``d`` over the non-dominant languages.

Band rule (ours; the paper leaves it open). The band has width ``w = b - a``
(default ``max(2, round(3 L / 32))``, which gives the published width 3 for
Llama-2-7B's 32 layers). Among windows ``[a, a + w]`` that lie inside the
middle region ``[floor(lo * L), ceil(hi * L)]`` (default ``lo = 0.25``,
``hi = 0.75``) and with ``1 <= a`` and ``a + w <= L - 1`` (both ends must be
decoder-layer inputs), pick the one whose mean curve value over the indices
``a..a+w`` is lowest; ties go to the earliest window. The middle region
follows the method's rationale (the knowledge-rich middle layers); without it
the last layers, where all languages converge on the output vocabulary
space, could win.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lingualift.errors import LingualiftError, require
from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.shifcon.vectors import LanguageVectors


def projection_distance(u: Any, v: Any) -> float:
    """Normalised projection distance between the row spaces of orthonormal ``u`` and ``v`` (``k x H``)."""
    import torch

    k = min(u.shape[0], v.shape[0])
    u, v = u[:k].double(), v[:k].double()
    cosines = torch.linalg.svdvals(u @ v.T).clamp(max=1.0)
    return float(torch.sqrt(torch.clamp((1 - cosines**2).sum() / k, min=0.0)))


def distance_curve(
    vectors: LanguageVectors, dominant: str = DOMINANT_LANGUAGE, rank: int | None = None
) -> dict[str, list[float]]:
    """Per-language distance to ``dominant`` at every hidden-state index, plus their ``mean``."""
    dominant = normalize_language(dominant)
    require(
        dominant in vectors.bases,
        f"The vectors have no principal subspace for {dominant!r}; recompute them with "
        "subspace_rank > 0 and the dominant language included.",
    )
    others = [lang for lang in vectors.languages if lang != dominant and lang in vectors.bases]
    require(
        others,
        "The layer curve needs at least one non-dominant language with a subspace; "
        "compute vectors for more languages.",
    )
    stored = vectors.bases[dominant].shape[1]
    k = rank or stored
    require(1 <= k <= stored, f"rank must be between 1 and {stored} (stored), got {k}.")
    curves: dict[str, list[float]] = {}
    for lang in others:
        curves[lang] = [
            projection_distance(vectors.bases[lang][i, :k], vectors.bases[dominant][i, :k])
            for i in range(vectors.num_layers + 1)
        ]
    curves["mean"] = [
        sum(curves[lang][i] for lang in others) / len(others) for i in range(vectors.num_layers + 1)
    ]
    return curves


def default_width(num_layers: int) -> int:
    return max(2, round(3 * num_layers / 32))


def choose_band(
    curve: list[float],
    num_layers: int,
    width: int | None = None,
    region: tuple[float, float] = (0.25, 0.75),
) -> tuple[int, int]:
    """The band ``(a, b)`` of the documented rule (see the module docstring)."""
    width = width or default_width(num_layers)
    require(
        len(curve) == num_layers + 1,
        f"The curve has {len(curve)} points but {num_layers} layers need {num_layers + 1}.",
    )
    require(1 <= width <= num_layers - 2, f"width must be between 1 and {num_layers - 2}.")
    lo_frac, hi_frac = region
    require(
        0.0 <= lo_frac < hi_frac <= 1.0, f"region must satisfy 0 <= lo < hi <= 1, got {region}."
    )
    lo = max(1, math.floor(lo_frac * num_layers))
    hi = min(num_layers - 1, math.ceil(hi_frac * num_layers))
    candidates = [a for a in range(lo, hi - width + 1)]
    if not candidates:
        raise LingualiftError(
            f"No band of width {width} fits in layers {lo}..{hi}; lower width or widen region."
        )
    best = min(candidates, key=lambda a: (sum(curve[a : a + width + 1]) / (width + 1), a))
    return best, best + width


def choose_area(
    vectors: LanguageVectors,
    dominant: str = DOMINANT_LANGUAGE,
    width: int | None = None,
    region: tuple[float, float] = (0.25, 0.75),
    rank: int | None = None,
) -> tuple[int, int, dict[str, Any]]:
    """Curve, band and a JSON-able record of how it was chosen."""
    curves = distance_curve(vectors, dominant, rank)
    a, b = choose_band(curves["mean"], vectors.num_layers, width, region)
    record = {
        "metric": "projection distance of principal subspaces, normalised to [0, 1]",
        "rank": rank or int(vectors.bases[normalize_language(dominant)].shape[1]),
        "rule": "lowest mean distance over a window of width w inside the middle region",
        "width": width or default_width(vectors.num_layers),
        "region": list(region),
        "a": a,
        "b": b,
        "curves": curves,
    }
    return a, b, record


def plot_curve(record: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Draw each language's curve, the mean, and the chosen band; write a PNG atomically."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()

    curves = record["curves"]
    a, b = record["a"], record["b"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for lang, values in curves.items():
        if lang == "mean":
            continue
        ax.plot(range(len(values)), values, lw=1, alpha=0.55, label=lang)
    mean = curves["mean"]
    ax.plot(range(len(mean)), mean, color="black", lw=2.5, label="mean")
    ax.axvspan(a, b, color="tab:orange", alpha=0.2, label=f"area [{a}, {b}]")
    ax.set_xlabel("hidden-state index (0 = embeddings, i = input of decoder layer i)")
    ax.set_ylabel("projection distance to en subspace")
    ax.set_title(title or f"ShifCon layer area (rank {record['rank']})")
    ax.set_xticks(range(len(mean)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path
