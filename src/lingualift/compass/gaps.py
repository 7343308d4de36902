"""Semantic gaps: cluster shares, priorities, quotas with water-filling, divergences.

Priority of cluster ``c`` is its term of KL(target || training)::

    w(c) = max(0, p_t(c) * log(p_t(c) / p_tr(c)))

with both shares add-one smoothed: large where users go and training is thin.
Quotas are proportional to ``w(c) ** (1 / tau)``: ``tau < 1`` sharpens towards
the largest gaps, ``tau > 1`` flattens. A cluster that holds fewer candidates
than its quota passes the rest on to the others (water-filling).
"""

from __future__ import annotations

import numpy as np

from lingualift.errors import require


def cluster_shares(
    labels: np.ndarray, n_clusters: int, weights: np.ndarray | None = None, smoothing: float = 1.0
) -> np.ndarray:
    """Add-``smoothing`` share of each cluster (optionally weighted, e.g. by tokens)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), weights=weights, minlength=n_clusters)
    counts = counts.astype(np.float64)[:n_clusters]
    if weights is not None and len(labels):
        # Smooth in units of an average item so tokens and items behave alike.
        smoothing = smoothing * float(np.mean(weights))
    counts += smoothing
    return counts / counts.sum()


def gap_priorities(p_target: np.ndarray, p_training: np.ndarray) -> np.ndarray:
    """``max(0, p_t * log(p_t / p_tr))`` per cluster (natural log)."""
    p_target = np.asarray(p_target, dtype=np.float64)
    p_training = np.asarray(p_training, dtype=np.float64)
    require(p_target.shape == p_training.shape, "Target and training shares differ in length.")
    return np.maximum(0.0, p_target * np.log(p_target / p_training))


def water_fill(weights: np.ndarray, budget: float, capacity: np.ndarray) -> np.ndarray:
    """Split ``budget`` in proportion to ``weights`` without exceeding ``capacity``.

    Clusters that are full pass their excess on, in proportion, to the rest;
    returns real-valued allocations (sum = min(budget, capacity where w > 0)).
    """
    weights = np.asarray(weights, dtype=np.float64)
    capacity = np.asarray(capacity, dtype=np.float64)
    alloc = np.zeros_like(weights)
    active = (weights > 0) & (capacity > 0)
    remaining = float(budget)
    while remaining > 1e-9 and active.any():
        share = np.zeros_like(weights)
        share[active] = remaining * weights[active] / weights[active].sum()
        room = capacity - alloc
        full = active & (share >= room)
        if full.any():
            remaining -= float(room[full].sum())
            alloc[full] = capacity[full]
            active &= ~full
            continue
        alloc += share
        remaining = 0.0
    return alloc


def integer_quotas(alloc: np.ndarray, capacity: np.ndarray, total: int) -> np.ndarray:
    """Round real allocations to integers summing to ``total`` (largest remainder)."""
    base = np.floor(alloc + 1e-9).astype(np.int64)
    base = np.minimum(base, capacity.astype(np.int64))
    left = int(total - base.sum())
    if left > 0:
        remainder = alloc - base
        remainder[base >= capacity] = -1.0
        for c in np.argsort(-remainder, kind="stable"):
            if left == 0 or remainder[c] < 0:
                break
            base[c] += 1
            left -= 1
    return base


def tempered(priorities: np.ndarray, tau: float) -> np.ndarray:
    """``w ** (1/tau)`` up to a common factor, computed in log space so any ``tau > 0`` works.

    A small ``tau`` raises the largest priority to a huge power; dividing every
    term by it first (subtracting the largest log) keeps that term at 1 instead
    of letting every term underflow to 0 and the quotas vanish.
    """
    require(tau > 0, f"tau must be positive, got {tau}.")
    w = np.asarray(priorities, dtype=np.float64)
    out = np.zeros_like(w)
    positive = w > 0
    if positive.any():
        logs = np.log(w[positive]) / tau
        out[positive] = np.exp(logs - logs.max())
    return out


def quotas(
    priorities: np.ndarray, budget: float, capacity: np.ndarray, tau: float = 1.0
) -> np.ndarray:
    """Quota per cluster: ``w ** (1/tau)`` water-filled against ``capacity``."""
    return water_fill(tempered(priorities, tau), budget, capacity)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)
