"""What fits now (issue 20, `placer status`): per tier of the placement tree, free GPUs and the largest job
placeable right now within one block of that tier; stranded GPUs; each leaf's occupancy.

Tiers: `node` (one node, within one NVLink island as placement takes it), then each level of the
placement tree (level 0: leaves or scalable units; then pods, cores...), then `all` (the fabric; one
tree of a fabric of disjoint trees, which no job spans). A multi-node job takes whole free nodes of one
size, so a block's largest job is the most GPUs of whole free nodes of one size in it, or the largest
single-node job when that is larger. Stranded GPUs are free GPUs on usable nodes already partly used:
no multi-node job can take them. Everything is numpy over nodes; Python loops run over levels and sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topology import ClusterState
from topology.summary import level_label

from .index import FabricIndex
from .islands import best_island_free


@dataclass
class Tier:
    tier: str  # node | <level role> | all
    level: int | None  # placement-tree level (None for node and all)
    blocks: int  # how many blocks of this tier hold a usable node
    largest_gpus: int  # the largest job placeable now within one block
    where: str | None  # a block that holds it (name), None when nothing fits
    whole_free_nodes_max: int  # most whole free nodes in one block


@dataclass
class Status:
    total_gpus: int
    usable_gpus: int
    free_gpus: int
    stranded_gpus: int  # free on partly used nodes: out of every multi-node job's reach
    whole_free_nodes: int
    unusable_nodes: int  # down or drained
    tiers: list[Tier]
    leaves: list[dict[str, Any]] = field(default_factory=list)  # per leaf: name, gpus, free, whole free nodes

    def as_data(self) -> dict[str, Any]:
        return {"total_gpus": self.total_gpus, "usable_gpus": self.usable_gpus, "free_gpus": self.free_gpus,
                "stranded_gpus": self.stranded_gpus, "whole_free_nodes": self.whole_free_nodes,
                "unusable_nodes": self.unusable_nodes,
                "tiers": [t.__dict__ for t in self.tiers], "leaves": self.leaves}


def largest_single_node(ix: FabricIndex, state: ClusterState, mask: np.ndarray) -> tuple[int, int]:
    """(GPUs, node) of the largest one-node job placeable now among `mask`'s usable nodes ((0, -1): none)."""
    usable = mask & state.usable
    if not usable.any():
        return 0, -1
    top = int(ix.fabric.node_gpus[usable].max())
    for g in range(top, 0, -1):
        ok = np.nonzero(usable & (best_island_free(ix, state, g) >= 0))[0]
        if ok.size:
            return g, int(ok[0])
    return 0, -1


def fabric_status(ix: FabricIndex, state: ClusterState, mask: np.ndarray | None = None) -> Status:
    """The status of the nodes in `mask` (None: every node)."""
    f = ix.fabric
    mask = np.ones(f.n_nodes, dtype=bool) if mask is None else mask
    usable = mask & state.usable
    gpus = f.node_gpus.astype(np.int64)
    free = np.where(usable, state.free_gpus.astype(np.int64), 0)
    whole = usable & state.whole_free()
    partly = usable & (free > 0) & (free < gpus)
    single, single_node = largest_single_node(ix, state, mask)
    tiers = [Tier("node", None, int(usable.sum()), single, f.node_names[single_node] if single_node >= 0 else None,
                  1 if whole.any() else 0)]
    per_leaf_sized = {int(s): np.bincount(f.node_leaf[whole & (gpus == s)], minlength=f.n_leaves)
                      for s in np.unique(gpus[whole])}
    leaf_has_usable = np.bincount(f.node_leaf[usable], minlength=f.n_leaves) > 0
    for level in range(ix.depth):
        tiers.append(_tier(ix, level, per_leaf_sized, leaf_has_usable, single, tiers[0].where))
    tiers.append(_tier(ix, None, per_leaf_sized, leaf_has_usable, single, tiers[0].where))
    leaf_gpus = np.bincount(f.node_leaf[mask], weights=gpus[mask], minlength=f.n_leaves)
    leaf_free = np.bincount(f.node_leaf, weights=free, minlength=f.n_leaves)
    leaf_whole = np.bincount(f.node_leaf[whole], minlength=f.n_leaves)
    leaf_usable = np.bincount(f.node_leaf[usable], weights=gpus[usable], minlength=f.n_leaves)
    leaves = [{"leaf": f.group_names[leaf], "gpus": int(leaf_gpus[leaf]), "usable_gpus": int(leaf_usable[leaf]),
               "free_gpus": int(leaf_free[leaf]), "whole_free_nodes": int(leaf_whole[leaf])}
              for leaf in range(f.n_leaves) if leaf_gpus[leaf] > 0]
    return Status(int(gpus[mask].sum()), int(gpus[usable].sum()), int(free.sum()), int(free[partly].sum()),
                  int(whole.sum()), int((mask & ~state.usable).sum()), tiers, leaves)


def _tier(ix: FabricIndex, level: int | None, per_leaf_sized: dict[int, np.ndarray], leaf_has_usable: np.ndarray,
          single: int, single_where: str | None) -> Tier:
    """Blocks of one level (None: the whole fabric, per tree): the most whole-free-node GPUs of one size."""
    f = ix.fabric
    block_of = ix.leaf_tree if level is None else ix.anc[level]
    ok = block_of >= 0
    n_blocks = int(np.unique(block_of[ok & leaf_has_usable]).size)
    best, where, most_nodes = single, single_where, 0
    for size, per_leaf in per_leaf_sized.items():
        counts = np.bincount(block_of[ok], weights=per_leaf[ok], minlength=int(block_of.max(initial=0)) + 1)
        if not counts.size:
            continue
        b = int(np.argmax(counts))
        most_nodes = max(most_nodes, int(counts[b]))
        if int(counts[b]) * size > best:
            best = int(counts[b]) * size
            where = _block_name(ix, level, b)
    name = "all" if level is None else level_label(level, f.depth)
    return Tier(name, level, n_blocks, best, where if best > 0 else None, most_nodes)


def _block_name(ix: FabricIndex, level: int | None, block: int) -> str:
    if level is not None:
        return ix.fabric.group_names[block]
    if ix.n_trees == 1:
        return "the fabric"
    root = int(ix.fabric.group_ancestors(int(np.nonzero(ix.leaf_tree == block)[0][0]))[-1])
    return f"the tree under {ix.fabric.group_names[root]}"
