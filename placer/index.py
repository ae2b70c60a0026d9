"""Per-fabric arrays the planner needs on every decision, computed once per Fabric."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from topology import Fabric

from .cost import CostWeights, cost_weights


@dataclass(frozen=True, eq=False)
class FabricIndex:
    fabric: Fabric
    depth: int
    anc: np.ndarray  # (depth, n_leaves): ancestor group of each leaf at level t, -1 where the tree skips level t
    group_nodes: np.ndarray  # nodes under each group
    leaf_order: np.ndarray  # leaves in depth-first tree order (rank order follows it)
    leaf_pos: np.ndarray  # position of each leaf in leaf_order
    type_features: tuple[frozenset[str], ...]
    type_islands: tuple[tuple[int, ...], ...]  # per node type: uint64 masks of its NVLink islands
    weights: CostWeights  # of the placement cost (placer/cost.py)
    leaf_tree: np.ndarray  # tree (0..n_trees-1) of each leaf: disjoint trees have no common switch
    n_trees: int


@lru_cache(maxsize=8)
def index_for(fabric: Fabric) -> FabricIndex:
    nl, ng = fabric.n_leaves, fabric.n_groups
    depth = max(fabric.depth, 1)
    anc = np.full((depth, nl), -1, dtype=np.int32)
    for leaf in range(nl):
        for g in fabric.group_ancestors(leaf):
            anc[int(fabric.group_level[g]), leaf] = g
    group_nodes = np.zeros(ng, dtype=np.int64)
    group_nodes[:nl] = np.diff(fabric.leaf_node_ptr)
    for level in range(depth - 1):
        kids = np.nonzero((fabric.group_level == level) & (fabric.group_parent >= 0))[0]
        np.add.at(group_nodes, fabric.group_parent[kids], group_nodes[kids])
    kids_of = fabric.group_children()
    order: list[int] = []
    stack = [g for g in range(ng) if fabric.group_parent[g] < 0][::-1]
    while stack:
        g = stack.pop()
        if g < nl:
            order.append(g)
        stack.extend(reversed(kids_of[g]))
    leaf_order = np.asarray(order, dtype=np.int32)
    leaf_pos = np.empty(nl, dtype=np.int32)
    leaf_pos[leaf_order] = np.arange(nl, dtype=np.int32)
    roots = sorted({int(fabric.group_ancestors(leaf)[-1]) for leaf in range(nl)})
    tree_id = {r: i for i, r in enumerate(roots)}
    leaf_tree = np.asarray([tree_id[fabric.group_ancestors(leaf)[-1]] for leaf in range(nl)], dtype=np.int32)
    islands = tuple(tuple(sum(1 << g for g in isl) for isl in t.islands()) for t in fabric.node_types)
    return FabricIndex(fabric, depth, anc, group_nodes, leaf_order, leaf_pos,
                       tuple(frozenset(t.features) for t in fabric.node_types), islands, cost_weights(fabric),
                       leaf_tree, len(roots))


def spare_mask(ix: FabricIndex, per_leaf: int) -> np.ndarray:
    """Hot spares: the last `per_leaf` nodes of each scalable unit (by node index), a fixed designation."""
    cache = ix.__dict__.setdefault("_spares", {})
    if per_leaf not in cache:
        mask = np.zeros(ix.fabric.n_nodes, dtype=bool)
        if per_leaf > 0:
            for leaf in range(ix.fabric.n_leaves):
                nodes = np.sort(ix.fabric.nodes_of_leaf(leaf))
                mask[nodes[-per_leaf:]] = True
        mask.flags.writeable = False
        cache[per_leaf] = mask
    return cache[per_leaf]
