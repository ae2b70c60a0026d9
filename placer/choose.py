"""Choosing where one job goes, given the current state.

Algorithm:
  phase 1  eligibility: the nodes the job may use now (arrays), and the per-leaf counts of them;
  phase 2  bounds: the fewest leaves (and level-1 groups) the eligible nodes could hold the job in;
  phase 3  single node, or single leaf: an exact scan of every candidate with the full cost (numpy);
  phase 4  several leaves: the lowest subtree that holds the job at the leaf bound (one level-1 group
           when one can, best fit; else the fewest groups by their capacity in that many leaves); a
           greedy answer there (largest leaves whole, the last best fit); then CP-SAT over those groups
           and a few alternatives, with the greedy answer as hint, unless the greedy answer already
           meets every lower bound. The better of the two is kept, so CP-SAT is never worse.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topology import ClusterState

from .bounds import Bounds
from .cost import placement_cost
from .cpsat_model import solve_leaf_choice
from .eligibility import Eligibility
from .index import FabricIndex
from .islands import best_island_free, pick_gpus
from .jobs import JobRequest
from .types import PlannerConfig


@dataclass
class Choice:
    nodes: list[int]  # node indices, rank order
    gpu_ids: dict[int, list[int]]
    cost: int
    terms: dict[str, int]
    leaves: int
    groups_by_level: list[int]  # G_t for t = 0..depth-1
    solver: str
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    model_proto: str | None = None


def rank_order(ix: FabricIndex, nodes: list[int]) -> list[int]:
    """Ranks follow the tree: depth-first leaf order, then node index; a ring leaves each leaf once."""
    f = ix.fabric
    return sorted(nodes, key=lambda n: (int(ix.leaf_pos[f.node_leaf[n]]), n))


def _whole_free_groups(ix: FabricIndex, state: ClusterState) -> np.ndarray:
    return state.group_free_nodes == ix.group_nodes


# -- single node --------------------------------------------------------------------------------------
def choose_single(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility,
                  by_end: bool = False) -> Choice | None:
    """Exact: every eligible node scored with the full cost; the cheapest wins (lowest index on ties).
    `by_end`: first the node whose whole-free time the job delays least (when ends are known)."""
    f = ix.fabric
    cand = np.nonzero(el.now)[0]
    if not cand.size:
        return None
    g = job.gpus
    # a partly used node always beats breaking a whole free one (2·CF > CF + leftover): score only those
    partly = cand[state.free_mask[cand] != state.full_mask[cand]]
    if partly.size and (f.node_gpus[cand] > g).all():
        cand = partly
    island_free = best_island_free(ix, state, g)[cand]
    wf = _whole_free_groups(ix, state)
    leaf = f.node_leaf[cand]
    node_whole = state.free_mask[cand] == state.full_mask[cand]
    takes_node = node_whole & (f.node_gpus[cand] == g)
    broken_node = (node_whole & ~takes_node).astype(np.int64)
    leaf_nodes = ix.group_nodes[leaf]
    leaf_taken = takes_node & (leaf_nodes == 1)
    broken_leaf = (wf[leaf] & ~leaf_taken).astype(np.int64)
    broken_groups = np.zeros(cand.size, dtype=np.int64)
    for t in range(1, ix.depth):
        a = ix.anc[t][leaf]
        ok = a >= 0
        gw = np.where(ok, wf[np.maximum(a, 0)], False)
        broken_groups += (gw & ~(leaf_taken & (ix.group_nodes[np.maximum(a, 0)] == 1))).astype(np.int64)
    leftover = state.free_gpus[cand].astype(np.int64) - g
    partial = (leftover > 0).astype(np.int64)
    cost = placement_cost(ix.weights, leaves=1, tier=0, broken_nodes=broken_node, broken_leaves=broken_leaf,
                          broken_groups=broken_groups, partial=partial, leftover=leftover)
    # ties: the tightest island, then the leaf with the fewest whole free nodes (best fit one level up:
    # leaves with many whole free nodes stay ready for multi-node jobs), then the lowest node index
    leaf_room = state.group_free_nodes[leaf]
    delay, tight = end_keys(state, cand, job.expected_run_s if by_end else None)
    order = np.lexsort((cand, leaf_room, island_free, cost, tight, delay))
    best = int(order[0])
    node = int(cand[best])
    gpu_ids = pick_gpus(ix, state, node, g)
    terms = {"leaves": 1, "tier_groups": 0, "broken_nodes": int(broken_node[best]),
             "broken_leaves": int(broken_leaf[best]), "broken_groups": int(broken_groups[best]),
             "partial": int(partial[best]), "leftover": int(leftover[best]), "ring_edges_off_leaf": 0,
             "ring_switch_hops": 0}
    alts = [{"node": f.node_names[int(cand[i])], "cost": int(cost[i])} for i in order[1:4]]
    return Choice([node], {node: gpu_ids}, int(cost[best]), terms, 1, [1] * ix.depth,
                  "exact scan (single node)", alts)


def end_keys(state: ClusterState, cand: np.ndarray, run_s: float | None) -> tuple[np.ndarray, np.ndarray]:
    """When the running jobs' ends are known: per candidate node, how long the job would delay the node's
    return to whole-free (0: it ends before the node's other jobs), and among those it does not delay, the
    node freeing soonest first (the ones busy longer stay for longer jobs). Zeros otherwise.

    Why: packing small jobs by free GPUs alone sprinkles long ones over many nodes, and a large job then
    waits days for the last of them; keeping long small jobs together keeps the other nodes freeing early
    (measured in docs/benchmarks.md, issue 18)."""
    zeros = np.zeros(cand.size)
    if state.node_ends is None or state.clock is None or not run_s:
        return zeros, zeros
    now = state.clock
    busy = np.maximum(state.node_ends[cand], now)
    busy = np.where(state.free_mask[cand] == state.full_mask[cand], now, busy)  # whole free: nothing to wait for
    delay = np.maximum(0.0, now + run_s - busy)
    return delay, np.where(delay == 0, busy, 0.0)


# -- whole nodes ---------------------------------------------------------------------------------------
def multi_cost(ix: FabricIndex, state: ClusterState, take: dict[int, int]) -> tuple[int, dict[str, int], list[int]]:
    """Cost of taking take[leaf] whole nodes from each leaf (placer/cost.py)."""
    wf = _whole_free_groups(ix, state)
    leaves = [l for l, x in take.items() if x > 0]
    n = sum(take.values())
    groups = [len(leaves)]
    tier = 0
    broken_groups = 0
    for t in range(1, ix.depth):
        per: dict[int, int] = {}
        for l in leaves:
            a = int(ix.anc[t][l])
            if a >= 0:
                per[a] = per.get(a, 0) + take[l]
        groups.append(len(per))
        tier += t * max(len(per) - 1, 0)
        broken_groups += sum(1 for g, x in per.items() if wf[g] and x < ix.group_nodes[g])
    free = state.group_free_nodes
    broken_leaves = sum(1 for l in leaves if wf[l] and take[l] < ix.group_nodes[l])
    partial = sum(1 for l in leaves if take[l] < free[l])
    leftover = int(sum(int(free[l]) for l in leaves) - n)
    cost = placement_cost(ix.weights, leaves=len(leaves), tier=tier, broken_leaves=broken_leaves,
                          broken_groups=broken_groups, partial=partial, leftover=leftover)
    terms = {"leaves": len(leaves), "tier_groups": tier, "broken_nodes": 0, "broken_leaves": broken_leaves,
             "broken_groups": broken_groups, "partial": partial, "leftover": leftover,
             **ring_terms(groups)}
    return int(cost), terms, groups


def ring_terms(groups_by_level: list[int]) -> dict[str, int]:
    """A ring all-reduce in our rank order leaves each level-t group once when the job spans several:
    ring edges leaving a leaf, and the switch hops of all ring edges (2 per level climbed)."""
    return {"ring_edges_off_leaf": groups_by_level[0] if groups_by_level[0] > 1 else 0,
            "ring_switch_hops": 2 * sum(g for g in groups_by_level if g > 1)}


def _nodes_from_take(ix: FabricIndex, el: Eligibility, take: dict[int, int]) -> list[int]:
    """Which nodes of each leaf: lowest indices, or, where the leaf has NVLink domains, as few domains as
    possible (the tightest domain that holds the rest, else the fullest domains first)."""
    f = ix.fabric
    out: list[int] = []
    for l, x in take.items():
        if x <= 0:
            continue
        members = f.nodes_of_leaf(l)
        ok = np.sort(members[el.now[members]])
        if el.use_last is not None:  # behind a degraded link: last in the leaf
            ok = ok[np.argsort(el.use_last[ok], kind="stable")]
        if not f.domain_names:
            out.extend(int(v) for v in ok[:x])
            continue
        by_dom: dict[int, list[int]] = {}
        for v in ok.tolist():
            by_dom.setdefault(int(f.node_domain[v]), []).append(v)
        rest = x
        while rest > 0:
            fits = [d for d, ns in by_dom.items() if len(ns) >= rest and d >= 0]
            if fits:
                d = min(fits, key=lambda d: (len(by_dom[d]), d))
            else:
                d = max(by_dom, key=lambda d: (d >= 0, len(by_dom[d]), -d))
            got = by_dom.pop(d)[:rest]
            out.extend(got)
            rest -= len(got)
    return out


def _choice(ix: FabricIndex, state: ClusterState, el: Eligibility, take: dict[int, int], solver: str) -> Choice:
    cost, terms, groups = multi_cost(ix, state, take)
    nodes = rank_order(ix, _nodes_from_take(ix, el, take))
    full = {n: list(range(int(ix.fabric.node_gpus[n]))) for n in nodes}
    return Choice(nodes, full, cost, terms, terms["leaves"], groups, solver)


def choose_single_leaf(ix: FabricIndex, state: ClusterState, el: Eligibility, counts: np.ndarray) -> Choice:
    """Exact: every leaf that holds the whole job, scored with the full cost (arrays, no per-leaf loop)."""
    need = el.nodes_needed
    cands = np.nonzero(counts >= need)[0]
    wf = _whole_free_groups(ix, state)
    free = state.group_free_nodes[cands].astype(np.int64)
    broken_leaf = (wf[cands] & (need < ix.group_nodes[cands])).astype(np.int64)
    partial = (need < free).astype(np.int64)
    broken_groups = np.zeros(cands.size, dtype=np.int64)
    for t in range(1, ix.depth):
        a = ix.anc[t][cands]
        ok = a >= 0
        a0 = np.maximum(a, 0)
        broken_groups += (ok & wf[a0] & (need < ix.group_nodes[a0])).astype(np.int64)
    cost = placement_cost(ix.weights, leaves=1, tier=0, broken_leaves=broken_leaf, broken_groups=broken_groups,
                          partial=partial, leftover=free - need)
    # at equal cost, a leaf with enough nodes not behind a degraded link
    short = np.zeros(cands.size, dtype=bool) if el.use_last is None else \
        np.bincount(ix.fabric.node_leaf[el.now & ~el.use_last], minlength=ix.fabric.n_leaves)[cands] < need
    order = np.lexsort((cands, short, cost))
    best = _choice(ix, state, el, {int(cands[order[0]]): need}, "exact scan (single leaf)")
    assert best.cost == int(cost[order[0]])
    best.alternatives = [{"leaves": [ix.fabric.group_names[int(cands[i])]], "cost": int(cost[i])} for i in order[1:4]]
    return best


def _top_k_sums(ix: FabricIndex, counts: np.ndarray, k: int) -> np.ndarray:
    """Per level-1 group: the sum of its k largest leaf counts."""
    a = ix.anc[1] if ix.depth > 1 else np.zeros(ix.fabric.n_leaves, dtype=np.int32)
    ok = (a >= 0) & (counts > 0)
    al, cl = a[ok], counts[ok]
    order = np.lexsort((-cl, al))
    al, cl = al[order], cl[order]
    if not al.size:
        return np.zeros(ix.fabric.n_groups)
    starts = np.r_[0, np.nonzero(np.diff(al))[0] + 1]
    rank = np.arange(al.size) - np.repeat(starts, np.diff(np.r_[starts, al.size]))
    keep = rank < k
    return np.bincount(al[keep], weights=cl[keep], minlength=ix.fabric.n_groups)


def choose_pods(ix: FabricIndex, state: ClusterState, counts: np.ndarray, need: int, k: int
                ) -> tuple[list[int], list[int]]:
    """Level-1 groups for a job at the leaf bound k: one that holds it alone (best fit), else the fewest
    by largest k-leaf capacity. Returns the chosen groups and a few alternatives for CP-SAT to weigh."""
    sums = _top_k_sums(ix, counts, k)
    wf = _whole_free_groups(ix, state)
    room = state.group_free_nodes
    alone = np.nonzero(sums >= need)[0].tolist()
    if alone:
        alone.sort(key=lambda g: (bool(wf[g]), int(room[g]), g))
        return alone[:1], alone[1:4]
    pods = [int(g) for g in np.argsort(-sums, kind="stable") if sums[g] > 0]
    a = ix.anc[1] if ix.depth > 1 else np.zeros(ix.fabric.n_leaves, dtype=np.int32)
    chosen: list[int] = []
    pool: list[int] = []
    for g in pods:
        chosen.append(g)
        pool.extend(counts[(a == g) & (counts > 0)].tolist())
        pool.sort(reverse=True)
        if sum(pool[:k]) >= need:
            break
    rest = [g for g in pods if g not in chosen]
    return chosen, rest[:2]


def greedy_in_pods(ix: FabricIndex, counts: np.ndarray, need: int, k: int, pods: list[int]) -> dict[int, int]:
    """Within the chosen level-1 groups: the k-1 largest leaves whole, the last one best fit."""
    a = ix.anc[1] if ix.depth > 1 else np.zeros(ix.fabric.n_leaves, dtype=np.int32)
    leaves = np.nonzero(np.isin(a, pods) & (counts > 0))[0]
    order = leaves[np.lexsort((leaves, -counts[leaves]))]
    take: dict[int, int] = {}
    got = 0
    for l in order[: k - 1].tolist():
        x = min(int(counts[l]), need - got)
        take[l] = x
        got += x
        if got >= need:
            return take
    rest = need - got
    fits = [l for l in order[k - 1 :].tolist() if counts[l] >= rest]
    if not fits:  # the pods were chosen to hold the job in k leaves, so this is a safety net
        fits = order[k - 1 :].tolist()
    last = min(fits, key=lambda l: (int(counts[l]) < rest, int(counts[l]), l))
    take[last] = min(rest, int(counts[last]))
    return take


def _cpsat_candidates(ix: FabricIndex, counts: np.ndarray, take: dict[int, int], pods: list[int],
                      spare: list[int], cap: int) -> np.ndarray:
    """The leaves CP-SAT may use: the greedy's, then the chosen groups' other leaves by free count, then
    the alternative groups' leaves, at most `cap`."""
    a = ix.anc[1] if ix.depth > 1 else np.zeros(ix.fabric.n_leaves, dtype=np.int32)
    out = list(take)
    seen = set(out)
    for groups in (pods, spare):
        ls = np.nonzero(np.isin(a, groups) & (counts > 0))[0]
        for l in ls[np.lexsort((ls, -counts[ls]))].tolist():
            if len(out) >= cap:
                return np.asarray(out)
            if l not in seen:
                out.append(l)
                seen.add(l)
    return np.asarray(out)


def choose_multi(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility, b: Bounds,
                 cfg: PlannerConfig, time_left_s: float | None) -> Choice:
    need, counts, k = el.nodes_needed, b.counts, b.leaf
    assert k is not None
    if k == 1:
        return choose_single_leaf(ix, state, el, counts)
    pods, spare = choose_pods(ix, state, counts, need, k)
    take = greedy_in_pods(ix, counts, need, k, pods)
    greedy = _choice(ix, state, el, take, "greedy")
    pod_lb = b.pod if b.pod is not None else 1
    proven = (greedy.leaves == k and (ix.depth < 2 or greedy.groups_by_level[1] <= pod_lb)
              and greedy.terms["broken_leaves"] + greedy.terms["broken_groups"] + greedy.terms["partial"] == 0
              and all(g <= 1 for g in greedy.groups_by_level[2:]))
    room = state.group_free_nodes
    alternatives = [{"group": ix.fabric.group_names[g], "free_nodes": int(room[g])} for g in spare]
    if proven or cfg.solver == "greedy":
        greedy.solver = "greedy (meets every lower bound: optimal)" if proven else "greedy (solver=greedy)"
        greedy.alternatives = alternatives
        return greedy
    if time_left_s is not None and time_left_s <= 0:
        greedy.solver = "greedy (batch time limit reached before CP-SAT)"
        greedy.alternatives = alternatives
        return greedy
    limit = cfg.time_limit_s if time_left_s is None else min(cfg.time_limit_s, time_left_s)
    if k > cfg.cpsat_max_leaves // 2:
        greedy.solver = f"greedy (spans {k} leaves: beyond the CP-SAT model cap of {cfg.cpsat_max_leaves} leaves)"
        greedy.alternatives = alternatives
        return greedy
    leaves = _cpsat_candidates(ix, counts, take, pods, spare, cfg.cpsat_max_leaves)
    res = solve_leaf_choice(ix, state, counts, leaves, need, job.max_switches, take, limit, cfg)
    alternatives.insert(0, {"greedy_cost": greedy.cost, "cpsat_status": res.status})
    if res.take is None:
        greedy.solver = f"greedy (CP-SAT {res.status} within {limit:g} s)"
        greedy.alternatives = alternatives
        greedy.model_proto = res.model_proto
        return greedy
    sat = _choice(ix, state, el, res.take, f"cp-sat {res.status.lower()}")
    sat.model_proto = res.model_proto
    if sat.cost > greedy.cost:  # never worse than the greedy answer
        greedy.solver = f"greedy (CP-SAT {res.status.lower()} found no better)"
        greedy.alternatives = alternatives
        return greedy
    sat.alternatives = alternatives
    return sat
