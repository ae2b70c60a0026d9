"""The hero-run planner (issue 20, `placer reserve`): where one very large job can start earliest within
its bound, and what that costs.

For every block of the chosen tier (a pod, a scalable unit, or the whole fabric/tree) the plan takes the
job's leaf bound in that block (the fewest leaves its usable nodes could hold it in) and finds the
earliest start: the smallest time T at which, counting only nodes free by T (free now, or their running
jobs' expected ends: Slurm's EndTime), some choice of that many leaves holds the job. The nodes taken are
those that free first. Cost: the GPU-hours left idle while the block drains (each chosen node idle from
when it frees until T: an upper bound, since Slurm backfills jobs that end before the reservation
starts), and the running jobs that must end first. Blocks are ranked by start, then by that cost.
A node whose job has no known end never frees as far as the plan knows.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from topology import ClusterState

from .bounds import fewest
from .index import FabricIndex
from .why import Running

LATER_STARTS_S = (3600, 4 * 3600, 24 * 3600)  # alternatives that start later to leave fewer GPU-hours idle


@dataclass
class ReservePlan:
    block: str  # the pod / unit / tree it sits in
    start: float  # epoch seconds
    nodes: list[int]  # node indices, rank order by leaf
    leaves: int
    leaf_bound: int
    idle_gpu_hours: float  # capacity left idle while draining (upper bound)
    must_end: list[tuple[str, float]] = field(default_factory=list)  # running jobs on those nodes, by end
    requeue: list[tuple[str, float]] = field(default_factory=list)  # requeued instead: (job, GPU-hours of work lost)
    alternative: str | None = None  # the matching-OR alternative of --constraint all its nodes meet (plan_hero)
    gpus_per_node: int = 0  # the node size it was planned for (plan_hero)

    @property
    def lost_gpu_hours(self) -> float:
        return self.idle_gpu_hours + sum(w for _, w in self.requeue)


def node_free_times(ix: FabricIndex, state: ClusterState, running: Sequence[Running], now: float) -> np.ndarray:
    """Per node: when it is wholly free (now if free, else the latest end of the jobs on it; inf when
    unknown, drained or down)."""
    f = ix.fabric
    t = np.where(state.whole_free() & state.usable, now, np.inf)
    nodes: list[int] = []
    ends: list[float] = []
    held: list[int] = []
    for r in running:  # one flat pass; the per-node reductions below are numpy
        end = np.nan if r.end is None else max(r.end, now)
        for n, ids in r.alloc:
            nodes.append(n)
            ends.append(end)
            held.append(len(ids))
    at = np.asarray(nodes, dtype=np.int64)
    e = np.asarray(ends, dtype=np.float64)
    unknown = np.zeros(f.n_nodes, dtype=bool)
    unknown[at[np.isnan(e)]] = True
    busy_until = np.full(f.n_nodes, -np.inf)
    np.maximum.at(busy_until, at[~np.isnan(e)], e[~np.isnan(e)])
    # a node busy only with jobs of known ends frees at the last of them (if nothing else holds GPUs there)
    accounted = np.isfinite(busy_until) & ~unknown & state.usable
    gpus_held = np.bincount(at, weights=np.asarray(held, dtype=np.float64), minlength=f.n_nodes).astype(np.int64)
    full = accounted & (state.free_gpus.astype(np.int64) + gpus_held == f.node_gpus)
    t[full] = busy_until[full]
    return t


def _earliest_in_block(ix: FabricIndex, free_at: np.ndarray, in_block: np.ndarray, need: int, size: int,
                       not_before: float, now: float) -> tuple[float, list[int], int] | None:
    f = ix.fabric
    cand = np.nonzero(in_block & (f.node_gpus == size) & np.isfinite(free_at))[0]
    usable_all = np.nonzero(in_block & (f.node_gpus == size))[0]
    bound = fewest(np.bincount(f.node_leaf[usable_all], minlength=f.n_leaves), need)
    if bound is None or cand.size < need:
        return None
    times = np.unique(np.maximum(free_at[cand], not_before))
    lo, hi = 0, times.size - 1

    def ok(t: float) -> bool:
        counts = np.bincount(f.node_leaf[cand[np.maximum(free_at[cand], not_before) <= t]], minlength=f.n_leaves)
        k = fewest(counts, need)
        return k is not None and k <= bound

    if not ok(times[hi]):
        return None
    while lo < hi:  # the first time at which the bound is reachable
        mid = (lo + hi) // 2
        if ok(times[mid]):
            hi = mid
        else:
            lo = mid + 1
    start = float(times[lo])
    ready = cand[np.maximum(free_at[cand], not_before) <= start]
    counts = np.bincount(f.node_leaf[ready], minlength=f.n_leaves)
    # of the leaves that can give as much, those idle least while draining (nodes freeing late); in a leaf,
    # the nodes that free last: the ones freeing early stay for backfill
    idle = np.bincount(f.node_leaf[ready], weights=start - np.maximum(free_at[ready], now), minlength=f.n_leaves)
    chosen: list[int] = []
    for leaf in np.lexsort((np.arange(f.n_leaves), idle, -counts))[:bound].tolist():
        members = ready[f.node_leaf[ready] == leaf]
        members = members[np.lexsort((members, -free_at[members]))]
        chosen.extend(int(n) for n in members[: need - len(chosen)])
        if len(chosen) >= need:
            break
    return start, chosen, bound


@dataclass(frozen=True)
class HeroChoice:
    """One way to place the hero run: a matching-OR alternative of its --constraint (`label` as sbatch -C
    writes it; None: the job has no such choice), the nodes it allows there (None: all) and its node size."""
    label: str | None
    allowed: np.ndarray | None
    size: int


def plan_hero(ix: FabricIndex, state: ClusterState, running: Sequence[Running], gpus: int, now: float,
              within: int | None, start_after: float | None, alternatives: int,
              choices: Sequence[HeroChoice], requeue_always: bool = False) -> list[ReservePlan]:
    """`plan_reservation` on each choice (every node of a plan meets the same one), merged earliest start
    first, then least idle, `alternatives` of them; then `plan_requeue`'s plan losing least work, when it
    starts sooner than all of them (or in any case: `requeue_always`, for a benchmark timing it). A plan
    spanning more leaves than the best plan of its node size needs is dropped: the job's bound is the best
    block's and best alternative's (as the validator counts it)."""
    plans: list[ReservePlan] = []
    sooner: list[ReservePlan] = []
    free_at = node_free_times(ix, state, running, now)  # once: every choice reads it
    for c in choices:
        for p in plan_reservation(ix, state, running, gpus, now, within, start_after, alternatives, c.size, c.allowed,
                                  free_at):
            plans.append(_tagged(p, c))
        if (q := plan_requeue(ix, state, running, gpus, now, within, start_after, c.size, c.allowed)) is not None:
            sooner.append(_tagged(q, c))
    bound: dict[int, int] = {}
    for p in plans + sooner:
        bound[p.gpus_per_node] = min(bound.get(p.gpus_per_node, p.leaf_bound), p.leaf_bound)
    plans = sorted((p for p in plans if p.leaves <= bound[p.gpus_per_node]),
                   key=lambda p: (p.start, p.idle_gpu_hours, p.block))[:alternatives]
    sooner = [q for q in sooner if q.leaves <= bound[q.gpus_per_node]]
    best = min(sooner, key=lambda q: q.lost_gpu_hours, default=None)
    if best is not None and (requeue_always or not plans or best.start < plans[0].start):
        plans.append(best)  # an alternative only: `placer reserve --apply` never requeues anybody's job
    return plans


def _tagged(plan: ReservePlan, choice: HeroChoice) -> ReservePlan:
    plan.alternative, plan.gpus_per_node = choice.label, choice.size
    return plan


def hero_size(ix: FabricIndex, state: ClusterState, allowed: np.ndarray | None = None) -> int:
    """The node size a hero run takes when not told: the most common among the usable nodes it may use
    (8 when there are none). The planner and the validator must be handed the same one."""
    usable = state.usable if allowed is None else state.usable & allowed
    return int(np.bincount(ix.fabric.node_gpus[usable]).argmax()) if usable.any() else 8


def plan_reservation(ix: FabricIndex, state: ClusterState, running: Sequence[Running], gpus: int, now: float,
                     within: int | None, start_after: float | None = None, alternatives: int = 3,
                     gpus_per_node: int | None = None, allowed: np.ndarray | None = None,
                     free_at: np.ndarray | None = None) -> list[ReservePlan]:
    """The best blocks for one job of `gpus` GPUs, earliest start first (`within`: a placement-tree level,
    None: the whole fabric, one tree of a forest; `allowed`: the nodes the job may use, None: all;
    `free_at`: `node_free_times` of these running jobs, when the caller has it)."""
    size = gpus_per_node or hero_size(ix, state, allowed)
    need = -(-gpus // size)
    if free_at is None:  # once: every block and later start below reads it
        free_at = node_free_times(ix, state, running, now)
    usable = state.usable if allowed is None else state.usable & allowed
    plans = _plans(ix, usable, running, free_at, need, size, now, within, max(now, start_after or now))
    plans = plans[:alternatives]
    # fewer blocks than alternatives asked (the whole fabric is one): the best block started later, when
    # that leaves fewer GPU-hours idle (other leaves, freeing closer to the start, can be chosen)
    for delay in LATER_STARTS_S:
        if not plans or len(plans) >= alternatives:
            break
        later = _plans(ix, usable, running, free_at, need, size, now, within, plans[0].start + delay)[:1]
        if later and later[0].idle_gpu_hours < plans[-1].idle_gpu_hours - 1e-9:
            later[0].block += f" (starting {delay // 3600} h later)"
            plans.append(later[0])
    return plans


def _plans(ix: FabricIndex, usable: np.ndarray, running: Sequence[Running], free_at: np.ndarray, need: int,
           size: int, now: float, within: int | None, not_before: float) -> list[ReservePlan]:
    """Each block's plan on `usable` nodes starting no earlier than `not_before`, earliest start first."""
    f = ix.fabric
    block_of = (ix.leaf_tree if within is None else ix.anc[within])[f.node_leaf]
    plans: list[ReservePlan] = []
    for b in np.unique(block_of[block_of >= 0]).tolist():
        got = _earliest_in_block(ix, free_at, usable & (block_of == b), need, size, not_before, now)
        if got is None:
            continue
        start, nodes, bound = got
        idle = sum(float(f.node_gpus[n]) * (start - max(float(free_at[n]), now)) for n in nodes) / 3600
        on = set(nodes)
        must = sorted(((r.job_id, float(r.end)) for r in running if r.end is not None and any(n in on for n, _ in
                                                                                              r.alloc)),
                      key=lambda x: x[1])
        name = f.group_names[b] if within is not None else "the fabric" if ix.n_trees == 1 else f"tree {b}"
        plans.append(ReservePlan(name, start, sorted(nodes, key=lambda n: (int(ix.leaf_pos[f.node_leaf[n]]), n)),
                                 len({int(f.node_leaf[n]) for n in nodes}), bound, idle, must))
    plans.sort(key=lambda p: (p.start, p.idle_gpu_hours, p.block))
    return plans


def requeue_loss(r: Running, now: float) -> float:
    """GPU-hours of work a requeue throws away: its GPUs times how long it has run (a job of unknown start
    is never requeued by a plan: its loss cannot be told)."""
    assert r.start is not None
    return sum(len(ids) for _, ids in r.alloc) * max(0.0, now - r.start) / 3600


def plan_requeue(ix: FabricIndex, state: ClusterState, running: Sequence[Running], gpus: int, now: float,
                 within: int | None, start_after: float | None = None,
                 gpus_per_node: int | None = None, allowed: np.ndarray | None = None) -> ReservePlan | None:
    """The hero run at once (or at `start_after`), within its bound, by requeuing the running jobs on the
    block whose requeue loses the least work (each job's GPUs times how long it has run); nodes of a job
    whose start is unknown are left alone, and so are nodes busy with GPUs no running job holds, and nodes
    not `allowed` (None: all)."""
    f = ix.fabric
    size = gpus_per_node or hero_size(ix, state, allowed)
    need = -(-gpus // size)
    start = max(now, start_after or now)
    loss = {r.job_id: requeue_loss(r, now) for r in running if r.start is not None}
    node_cost = np.zeros(f.n_nodes)
    jobs_on: dict[int, list[str]] = {}
    untold = np.zeros(f.n_nodes, dtype=bool)
    held = np.zeros(f.n_nodes, dtype=np.int64)
    for r in running:
        for n, ids in r.alloc:
            held[n] += len(ids)
        if r.start is None:
            untold[[n for n, _ in r.alloc]] = True
            continue
        for n, _ in r.alloc:
            node_cost[n] += loss[r.job_id]
            jobs_on.setdefault(n, []).append(r.job_id)
    # GPUs taken that no running job holds (Slurm shows the node busy, its job unseen): nothing to requeue
    untold |= f.node_gpus.astype(np.int64) - state.free_gpus.astype(np.int64) > held
    block_of = (ix.leaf_tree if within is None else ix.anc[within])[f.node_leaf]
    best: ReservePlan | None = None
    for b in np.unique(block_of[block_of >= 0]).tolist():
        mine = state.usable & ~untold & (block_of == b) & (f.node_gpus == size)
        usable = np.nonzero(mine if allowed is None else mine & allowed)[0]
        counts = np.bincount(f.node_leaf[usable], minlength=f.n_leaves)
        bound = fewest(counts, need)
        if bound is None:
            continue
        leaf_cost = np.bincount(f.node_leaf[usable], weights=node_cost[usable], minlength=f.n_leaves)
        chosen: list[int] = []
        for leaf in np.lexsort((np.arange(f.n_leaves), leaf_cost, -counts))[:bound].tolist():
            members = usable[f.node_leaf[usable] == leaf]
            members = members[np.lexsort((members, node_cost[members]))]
            chosen.extend(int(n) for n in members[: need - len(chosen)])
        hit = sorted({j for n in chosen for j in jobs_on.get(n, [])}, key=lambda j: (loss[j], j))
        plan = ReservePlan("", start, sorted(chosen, key=lambda n: (int(ix.leaf_pos[f.node_leaf[n]]), n)),
                           len({int(f.node_leaf[n]) for n in chosen}), bound, 0.0,
                           requeue=[(j, loss[j]) for j in hit])
        plan.block = (f.group_names[b] if within is not None else "the fabric" if ix.n_trees == 1 else f"tree {b}")
        if best is None or plan.lost_gpu_hours < best.lost_gpu_hours:
            best = plan
    if best is not None:
        best.block += " (requeuing)"
    return best
