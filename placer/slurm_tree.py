"""Slurm's own topology/tree node choice, re-implemented faithfully (the baseline we must beat).

Follows ../shared/SLURM-TREE.md, itself read from Slurm 22.05's `_eval_nodes_topo`,
`_topo_compare_switches`, `_topo_choose_best_switch`, `_topo_add_dist` and checked against a real
slurmctld. The switch table is the fabric's placement tree in its exported topology.conf order
(leaves first, then each level). `version="24.05"` applies the two changes of Slurm 24.05.3+.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from topology import ClusterState

from .choose import Choice, multi_cost, rank_order
from .eligibility import Eligibility
from .index import FabricIndex

Version = Literal["22.05", "24.05"]


def slurm_tree_nodes(ix: FabricIndex, usable: np.ndarray, need: int, version: Version = "22.05") -> list[int] | None:
    """Slurm's node set for a job of `need` nodes among `usable` ones (node index order), or None."""
    f = ix.fabric
    ng, nl = f.n_groups, f.n_leaves
    level = f.group_level.astype(np.int64)
    parent = np.where(f.group_parent >= 0, f.group_parent, np.arange(ng)).astype(np.int64)  # root: its own parent

    cnt = _counts(ix, usable)
    # step 2: scope = highest-level switch with enough usable nodes, the later one on equal level
    top = -1
    for g in range(ng):
        if cnt[g] >= need and (top == -1 or level[g] >= level[top]):
            top = g
    if top == -1:
        return None
    # step 3: candidates are the usable nodes under the scope
    under_top = np.zeros(nl, dtype=bool)
    under_top[np.nonzero(ix.anc[int(level[top])] == top)[0]] = True
    cand = usable & under_top[f.node_leaf]
    cnt = _counts(ix, cand)
    taken = np.zeros(f.n_nodes, dtype=bool)
    dist = np.zeros(nl, dtype=np.int64)
    hops = _hop_matrix(ix)

    rem = need
    chosen: list[int] = []
    while rem > 0:
        best = _best_leaf(cnt, parent, level, dist, nl, rem, version)
        if best == -1:
            return None
        # step 6: all its usable nodes in node-index order, as many as still needed
        members = np.sort(f.nodes_of_leaf(best))
        got = members[cand[members] & ~taken[members]][:rem]
        taken[got] = True
        chosen.extend(int(n) for n in got)
        rem -= got.size
        if version == "24.05":  # 24.05.3+: ancestors see what is really left
            g = int(f.group_parent[best])
            while g >= 0:
                cnt[g] -= cnt[best]
                g = int(f.group_parent[g])
        cnt[best] = 0
        dist += hops[best]
    return chosen


def _best_leaf(cnt: np.ndarray, parent: np.ndarray, level: np.ndarray, dist: np.ndarray, nl: int, rem: int,
               version: Version) -> int:
    """Step 4: over the leaves with nodes left, in table order, the closest best fit (-1: none)."""
    best = -1
    for leaf in np.nonzero(cnt[:nl] > 0)[0].tolist():
        if best == -1:
            best = leaf
            continue
        tcs, i_fit = _compare(cnt, parent, level, leaf, best, rem)
        closer_wins = i_fit if version == "24.05" else tcs >= 0
        if (dist[leaf] < dist[best] and closer_wins) or (dist[leaf] == dist[best] and tcs > 0):
            best = leaf
    return best


def _counts(ix: FabricIndex, mask: np.ndarray) -> np.ndarray:
    """Nodes of `mask` under every group (leaves, then each level summed into its parents)."""
    f = ix.fabric
    level = f.group_level.astype(np.int64)
    c = np.zeros(f.n_groups, dtype=np.int64)
    c[:f.n_leaves] = np.bincount(f.node_leaf[mask], minlength=f.n_leaves)
    for lv in range(ix.depth - 1):
        kids = np.nonzero((level == lv) & (f.group_parent >= 0))[0]
        np.add.at(c, f.group_parent[kids], c[kids])
    return c


def _compare(cnt: np.ndarray, parent: np.ndarray, level: np.ndarray, i: int, j: int, rem: int
             ) -> tuple[int, bool]:
    """Slurm's _topo_compare_switches: > 0 when leaf i is the better choice than j for `rem` nodes, and
    whether i alone fits; climbs to the parents while neither fits and they differ."""
    i_fit = False
    while True:
        i_fit, j_fit = bool(cnt[i] >= rem), bool(cnt[j] >= rem)
        if i_fit and j_fit:
            if cnt[i] < cnt[j]:
                return 1, i_fit
            if cnt[i] > cnt[j]:
                return -1, i_fit
            break
        if i_fit:
            return 1, i_fit
        if j_fit:
            return -1, i_fit
        if (parent[i] != i or parent[j] != j) and parent[i] != parent[j]:
            i, j = int(parent[i]), int(parent[j])
            continue
        break
    if cnt[i] > cnt[j]:
        return 1, i_fit
    if cnt[i] < cnt[j]:
        return -1, i_fit
    if level[i] < level[j]:
        return 1, i_fit
    if level[i] > level[j]:
        return -1, i_fit
    return 0, i_fit


def _hop_matrix(ix: FabricIndex) -> np.ndarray:
    """Leaf-to-leaf switch hops through the lowest common ancestor (Slurm's switches_dist)."""
    cached = getattr(ix, "_hops", None)
    if cached is not None:
        return cached
    nl = ix.fabric.n_leaves
    hops = np.zeros((nl, nl), dtype=np.int64)
    for t in range(1, ix.depth):
        a = ix.anc[t]
        differ = (a[:, None] != a[None, :]) | (a[:, None] < 0)
        hops += 2 * differ  # each level where the two leaves still differ adds one hop up and one down
    np.fill_diagonal(hops, 0)
    object.__setattr__(ix, "_hops", hops)
    return hops


def slurm_tree_choice(ix: FabricIndex, state: ClusterState, el: Eligibility, version: Version = "22.05"
                      ) -> Choice | None:
    """Slurm's choice for a whole-node job, scored with our cost model for comparison."""
    nodes = slurm_tree_nodes(ix, el.now, el.nodes_needed, version)
    if nodes is None:
        return None
    take: dict[int, int] = {}
    for n in nodes:
        leaf = int(ix.fabric.node_leaf[n])
        take[leaf] = take.get(leaf, 0) + 1
    cost, terms, groups = multi_cost(ix, state, take)
    ordered = rank_order(ix, nodes)
    return Choice(ordered, {n: list(range(int(ix.fabric.node_gpus[n]))) for n in ordered}, cost, terms,
                  terms["leaves"], groups, f"slurm-tree {version}")
