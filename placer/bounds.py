"""Lower bounds: the fewest leaves (and level-1 groups) a job's nodes can be spread over.

The leaf lower bound *now* counts the nodes that can take the job in the current state; the bound on
an *empty fabric* counts every node that could ever host it (in service, right size, features,
partition, not excluded). Both are `fewest` over per-leaf counts; the metrics "at the leaf bound"
compare a placement with the empty-fabric bound.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .index import FabricIndex


@dataclass
class Bounds:
    leaf: int | None  # fewest leaves (None: does not fit)
    pod: int | None  # fewest level-1 groups
    counts: np.ndarray  # qualifying nodes per leaf


def fewest(counts: np.ndarray, need: int) -> int | None:
    """Fewest of these bins whose counts add up to `need`."""
    if need <= 0:
        return 0
    s = np.sort(counts[counts > 0])[::-1]
    if not s.size or s.sum() < need:
        return None
    return int(np.searchsorted(np.cumsum(s), need) + 1)


def fits_in(counts: np.ndarray, need: int, k: int) -> bool:
    """`fewest(counts, need) <= k`, as the sum of the k largest counts: no full sort (the hot test of a
    walk over job ends, placer/timeline.py and the simulator's hold)."""
    if need <= 0:
        return True
    if k <= 0:
        return False
    if k >= counts.size:
        return int(counts.sum()) >= need
    return int(np.partition(counts, -k)[-k:].sum()) >= need


def leaf_counts(ix: FabricIndex, nodes: np.ndarray) -> np.ndarray:
    """Per leaf: how many of the nodes in the mask `nodes` it holds."""
    return np.bincount(ix.fabric.node_leaf[nodes], minlength=ix.fabric.n_leaves).astype(np.int64)


def bounds(ix: FabricIndex, counts: np.ndarray, need: int) -> Bounds:
    """Leaf and level-1 group bounds for `need` nodes given per-leaf counts of qualifying nodes. On a
    fabric of disjoint trees a job stays in one tree (as Slurm's): the best tree's bounds."""
    if ix.n_trees > 1:
        per_tree = [_bounds_one(ix, np.where(ix.leaf_tree == t, counts, 0), need) for t in range(ix.n_trees)]
        fit = [b for b in per_tree if b[0] is not None]
        leaf, pod = min(fit, key=lambda b: (b[0], b[1] or 0)) if fit else (None, None)
        return Bounds(leaf, pod, counts)
    return Bounds(*_bounds_one(ix, counts, need), counts)


def _bounds_one(ix: FabricIndex, counts: np.ndarray, need: int) -> tuple[int | None, int | None]:
    leaf = fewest(counts, need)
    pod = None
    if ix.depth > 1:
        a = ix.anc[1]
        ok = a >= 0
        pod = fewest(np.bincount(a[ok], weights=counts[ok], minlength=ix.fabric.n_groups).astype(np.int64), need)
    elif leaf is not None:
        pod = 1
    return leaf, pod


def best_tree(ix: FabricIndex, counts: np.ndarray, need: int) -> int | None:
    """Of disjoint trees, the one a job of `need` nodes goes to: the fewest leaves, then the fewest
    qualifying nodes (best fit: roomy trees stay ready for large jobs), then the first; None: none holds it."""
    best: tuple[int, int, int] | None = None
    for t in range(ix.n_trees):
        c = np.where(ix.leaf_tree == t, counts, 0)
        k = fewest(c, need)
        if k is not None and (best is None or (k, int(c.sum()), t) < best):
            best = (k, int(c.sum()), t)
    return None if best is None else best[2]


def empty_fabric_bounds(ix: FabricIndex, static: np.ndarray, need: int) -> Bounds:
    """The bounds on an empty fabric: `static` marks every node that could ever host the job
    (Eligibility.static)."""
    return bounds(ix, leaf_counts(ix, static), need)
