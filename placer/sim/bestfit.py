"""`best-fit`: the strongest cheap baseline (issue 18), a greedy that never looks ahead.

Algorithm:
  a job of one node or less goes to the partly used node with the fewest free GPUs that fits, preferring
  leaves already broken (fewest whole free nodes), then lower node index; with no partly used node that
  fits, a whole free node, again in the most broken leaf;
  a multi-node job takes the single leaf whose eligible whole free nodes fit it most tightly; else, at
  the lowest tree level where one group can hold it, the group (pod) needing the fewest leaves, and in
  it the fullest leaves first, the tightest fitting leaf for the remainder.
All per-node work is numpy over the eligibility mask; Python loops run over groups and leaves only.
"""
from __future__ import annotations

import numpy as np

from topology import ClusterState

from ..eligibility import Eligibility
from ..index import FabricIndex
from ..islands import pick_gpus
from ..jobs import JobRequest
from .records import Alloc


def policy_best_fit(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility) -> Alloc | None:
    f = ix.fabric
    leaf_whole = np.bincount(f.node_leaf[state.whole_free() & state.usable], minlength=f.n_leaves)
    if not el.multi_node:
        return _small(ix, state, job, el, leaf_whole)
    per_leaf = np.bincount(f.node_leaf[el.now], minlength=f.n_leaves)
    if per_leaf.sum() < el.nodes_needed:
        return None
    take = _leaf_counts(ix, per_leaf, el.nodes_needed)
    if take is None:
        return None
    nodes: list[int] = []
    for leaf, k in take:
        in_leaf = np.nonzero(el.now & (f.node_leaf == leaf))[0]
        nodes.extend(int(n) for n in in_leaf[:k])
    return [(n, list(range(int(f.node_gpus[n])))) for n in nodes]


def _small(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility, leaf_whole: np.ndarray
           ) -> Alloc | None:
    cand = np.nonzero(el.now)[0]
    if cand.size == 0:
        return None
    free = state.free_gpus[cand]
    partly = free < ix.fabric.node_gpus[cand]
    pool = cand[partly] if partly.any() else cand
    order = np.lexsort((pool, leaf_whole[ix.fabric.node_leaf[pool]], state.free_gpus[pool]))
    node = int(pool[order[0]])
    return [(node, pick_gpus(ix, state, node, job.gpus, tightest=True))]


def _leaf_counts(ix: FabricIndex, per_leaf: np.ndarray, need: int) -> list[tuple[int, int]] | None:
    """(leaf, nodes to take there) for a job of `need` whole nodes: one leaf if any fits (the tightest),
    else the group at the lowest level needing the fewest leaves, fullest leaves first, tightest last."""
    fits = np.nonzero(per_leaf >= need)[0]
    if fits.size:
        return [(int(fits[np.argmin(per_leaf[fits])]), need)]
    for level in range(1, ix.depth):
        anc = ix.anc[level]
        best: tuple[int, int, int] | None = None  # (leaves needed, free nodes in the group, group)
        for g in np.unique(anc[anc >= 0]).tolist():
            counts = np.sort(per_leaf[anc == g])[::-1]
            csum = np.cumsum(counts)
            if csum.size == 0 or csum[-1] < need:
                continue
            k = int(np.searchsorted(csum, need)) + 1
            key = (k, int(csum[-1]), int(g))
            best = key if best is None or key < best else best
        if best is not None:
            return _fill(np.nonzero(anc == best[2])[0], per_leaf, need)
    if ix.n_trees > 1:  # disjoint trees and none holds it alone: never spanned (as Slurm)
        return None
    return _fill(np.arange(per_leaf.size), per_leaf, need)  # every leaf, under the one root


def _fill(leaves: np.ndarray, per_leaf: np.ndarray, need: int) -> list[tuple[int, int]]:
    """Fullest leaves first until one leaf left over can take the remainder; that one is the tightest."""
    left = [int(x) for x in leaves[np.argsort(-per_leaf[leaves], kind="stable")] if per_leaf[x] > 0]
    out: list[tuple[int, int]] = []
    while need > 0 and left:
        fitting = [x for x in left if per_leaf[x] >= need]
        if fitting:
            tight = min(fitting, key=lambda x: (int(per_leaf[x]), x))
            out.append((tight, need))
            return out
        x = left.pop(0)
        out.append((x, int(per_leaf[x])))
        need -= int(per_leaf[x])
    return out
