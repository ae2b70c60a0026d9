"""The planning API: (Fabric, ClusterState, jobs, config) -> placements. Pure: no I/O.

A queue is placed in priority order (higher first, then submit time, then input order): each job takes
the best place left by the jobs above it, so a lower-priority job never takes what a higher-priority job
needs to start now. CP-SAT runs per job under `time_limit_s`; once the queue's `batch_time_limit_s` is
spent, the remaining jobs get the greedy answer, and each says so in its `solver` field.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from topology import ClusterState, Fabric

from .bounds import best_tree, bounds, empty_fabric_bounds, leaf_counts
from .choose import Choice, choose_multi, choose_single
from .constraints import parse_constraint
from .eligibility import Eligibility, eligibility
from .index import FabricIndex, index_for, spare_mask
from .jobs import JobRequest
from .ranks import Parallelism, name_order_layout, placer_layout, traffic
from .types import Placement, PlannerConfig


@dataclass
class PlanResult:
    placements: list[Placement]
    state: ClusterState  # the state after every placed job
    elapsed_s: float

    def summary(self) -> dict[str, Any]:
        placed = [p for p in self.placements if p.status == "placed"]
        multi = [p for p in placed if len(p.nodes) > 1]
        at_bound = [p for p in multi if p.leaf_lower_bound is not None and p.leaves <= p.leaf_lower_bound]
        return {
            "jobs": len(self.placements),
            "placed": len(placed),
            "pending": sum(p.status == "pending" for p in self.placements),
            "unplaceable": sum(p.status == "unplaceable" for p in self.placements),
            "gpus_placed": sum(p.gpus for p in placed),
            "multi_node_jobs": len(multi),
            "at_leaf_lower_bound": len(at_bound),
            "greedy_fallbacks": sum("greedy (" in p.solver and "optimal" not in p.solver for p in placed),
            "elapsed_s": round(self.elapsed_s, 4),
        }


def _order(jobs: list[JobRequest]) -> list[int]:
    return sorted(range(len(jobs)), key=lambda i: (-jobs[i].priority,
                                                   jobs[i].submit_time if jobs[i].submit_time is not None else 0.0, i))


def within_one_tree(ix: FabricIndex, el: Eligibility) -> Eligibility:
    """On a fabric of disjoint trees a multi-node job uses one tree (Slurm's tree never spans them): the
    best tree that holds it now, else the best that could hold it on an empty fabric."""
    f = ix.fabric
    t = best_tree(ix, leaf_counts(ix, el.now), el.nodes_needed)
    if t is None:
        t = best_tree(ix, leaf_counts(ix, el.static), el.nodes_needed)
    if t is None:
        return el
    in_tree = ix.leaf_tree[f.node_leaf] == t
    return replace(el, now=el.now & in_tree, static=el.static & in_tree, ready=el.ready & in_tree)


def degraded_last(el: Eligibility, behind: np.ndarray, avoid: bool) -> Eligibility:
    """Nodes behind a degraded link: out of a multi-node job's reach (avoid, counted as a reason), or
    taken last, only where the placement costs the same without them (weigh)."""
    if not avoid:
        return replace(el, use_last=behind)
    hit = int((el.now & behind).sum())
    excluded = {**el.excluded, "behind a degraded link": hit} if hit else el.excluded
    return replace(el, now=el.now & ~behind, static=el.static & ~behind, ready=el.ready & ~behind,
                   excluded=excluded)


def avoided_nodes(fabric: Fabric, cfg: PlannerConfig) -> frozenset[str]:
    """What the validator must know of `degraded_links: avoid`: nodes no multi-node job may take."""
    if cfg.degraded_links != "avoid" or fabric.node_degraded is None:
        return frozenset()
    return frozenset(fabric.node_names[int(n)] for n in np.nonzero(fabric.node_degraded)[0])


def spare_nodes(fabric: Fabric, cfg: PlannerConfig) -> frozenset[str]:
    """What the validator must know of `spares_per_su`: hot spares no job may take (only replacements)."""
    if not cfg.spares_per_su:
        return frozenset()
    mask = spare_mask(index_for(fabric), cfg.spares_per_su)
    return frozenset(fabric.node_names[int(n)] for n in np.nonzero(mask)[0])


def alternatives(job: JobRequest) -> list[int | None]:
    """The matching-OR alternatives (`-C "[a|b]"`) to place the job on one at a time; [None]: no choice."""
    c = parse_constraint(job.constraint)[0] if job.constraint else None
    return list(range(len(c.alternatives))) if c is not None and len(c.alternatives) > 1 else [None]


def job_eligibility(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig,
                    alternative: int | None = None) -> Eligibility:
    """The nodes that can take `job` as placer decides under `cfg` (hot spares out): what `place_one`,
    the timeline's look-ahead and the leaf bound all start from."""
    spares = spare_mask(ix, cfg.spares_per_su) if cfg.spares_per_su else None
    return eligibility(ix, state, job, spares, alternative)


def best_of(tries: list[Placement]) -> Placement:
    """The preferred placement over matching-OR alternatives; its bounds are the best over all of them."""
    best = min(tries, key=_preference)
    best.leaf_lower_bound = min((t.leaf_lower_bound for t in tries if t.leaf_lower_bound is not None),
                                default=None)
    best.pod_lower_bound = min((t.pod_lower_bound for t in tries if t.pod_lower_bound is not None), default=None)
    return best


def _preference(p: Placement) -> tuple[int, int, int]:
    """Placed before pending before unplaceable; then fewer leaves over the bound, then lower cost."""
    rank = {"placed": 0, "pending": 1}.get(p.status, 2)
    return rank, p.leaves - (p.leaf_lower_bound or 0), p.cost if p.cost is not None else 0


def place_one(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig,
              time_left_s: float | None = None, el: Eligibility | None = None) -> Placement:
    """Decide one job against `state` (not modified). `el` may pass eligibility already computed."""
    f = ix.fabric
    unhonoured = job.not_yet_honoured()
    if unhonoured:
        return Placement(job=job.job_id, status="unplaceable", gpus=job.gpus, priority=job.priority,
                         reason=f"{unhonoured} is not honoured by placer yet: left to Slurm")
    if el is None and len(alts := alternatives(job)) > 1:
        # matching OR: every node takes the same alternative; the best placement over them wins
        return best_of([place_one(ix, state, job, cfg, time_left_s, job_eligibility(ix, state, job, cfg, k))
                        for k in alts])
    el = el or job_eligibility(ix, state, job, cfg)
    need = el.nodes_needed
    if ix.n_trees > 1 and el.multi_node:
        el = within_one_tree(ix, el)
    if el.multi_node and f.node_degraded is not None and cfg.degraded_links != "ignore":
        el = degraded_last(el, f.behind_degraded(), cfg.degraded_links == "avoid")
    p = Placement(job=job.job_id, status="pending", gpus=job.gpus, priority=job.priority)
    static_k = empty_fabric_bounds(ix, el.static, need).leaf
    b = bounds(ix, leaf_counts(ix, el.now), need)
    p.leaf_lower_bound, p.pod_lower_bound = b.leaf, b.pod
    unit = f"{need} whole {el.gpus_per_node}-GPU node(s)" if el.multi_node else f"{job.gpus} GPU(s) on one node"
    excl = ", ".join(f"{r} {n}" for r, n in el.excluded.items())
    n_ok = int(el.now.sum())
    header = f"needs {unit}; {n_ok} of {f.n_nodes} nodes can take it now" + (f" (excluded: {excl})" if excl else "")
    if static_k is None:
        p.status = "unplaceable"
        p.reason = f"{header}; even with every node free, only {int(el.static.sum())} nodes qualify"
        if ix.n_trees > 1 and int(el.static.sum()) >= need:
            largest = int(np.bincount(ix.leaf_tree[f.node_leaf[el.static]], minlength=ix.n_trees).max())
            p.reason = (f"{header}; the fabric is {ix.n_trees} disjoint trees and the largest holds only "
                        f"{largest} qualifying nodes: a job never spans trees (as Slurm's topology/tree)")
        return _explained(p, cfg, el, b, None)
    if job.max_switches is not None and static_k > job.max_switches:
        p.status = "unplaceable"
        p.reason = f"{header}; needs {static_k} leaves even on an empty fabric, max_switches is {job.max_switches}"
        return _explained(p, cfg, el, b, None)
    if b.leaf is None:
        p.reason = f"{header}; fits only {n_ok if el.multi_node else 0} of {need} now" if el.multi_node else \
            f"{header}; no node has {job.gpus} free GPUs in one NVLink island now"
        return _explained(p, cfg, el, b, None)
    if job.max_switches is not None and b.leaf > job.max_switches:
        p.reason = f"{header}; needs {b.leaf} leaves now, max_switches is {job.max_switches}: waits for room"
        return _explained(p, cfg, el, b, None)
    choice = (choose_multi(ix, state, job, el, b, cfg, time_left_s) if el.multi_node
              else choose_single(ix, state, job, el, cfg.small_jobs_by_end))
    assert choice is not None
    p.status = "placed"
    p.nodes = [f.node_names[n] for n in choice.nodes]
    p.gpu_ids = {f.node_names[n]: ids for n, ids in choice.gpu_ids.items()}
    p.leaves = choice.leaves
    p.pods = choice.groups_by_level[1] if ix.depth > 1 else 1
    p.cost, p.cost_terms, p.solver = choice.cost, choice.terms, choice.solver
    p.model_proto = choice.model_proto
    where = f"{choice.leaves} leaf" + ("s" if choice.leaves != 1 else "") + f" (bound {b.leaf})"
    if ix.depth > 2:
        where += f", {p.pods} level-1 group" + ("s" if p.pods != 1 else "") + f" (bound {b.pod})"
    p.reason = f"{header}; placed on {where} by {choice.solver}"
    if job.parallel:
        attach_ranks(f, p, job)
    return _explained(p, cfg, el, b, choice)


def attach_ranks(fabric: Fabric, p: Placement, job: JobRequest) -> None:
    """Rank order for a tp x pp x dp job, with its traffic and Slurm's name order's on the same GPUs."""
    par = Parallelism(job.tp or 1, job.pp or 1, job.dp or 1, *job.weights)
    ours = placer_layout(fabric, p.gpu_ids, par)
    p.ranks = [[fabric.node_names[n], g] for n, g in ours]
    p.rank_traffic = traffic(fabric, ours, par)
    p.name_order_traffic = traffic(fabric, name_order_layout(fabric, p.gpu_ids, par), par)


def _explained(p: Placement, cfg: PlannerConfig, el: Any, b: Any, choice: Choice | None) -> Placement:
    if not cfg.explain:
        return p
    p.explain = {
        "nodes_eligible_now": int(el.now.sum()),
        "nodes_excluded": el.excluded,
        "leaf_lower_bound": b.leaf,
        "pod_lower_bound": b.pod,
        "leaves_with_room": int((b.counts > 0).sum()),
        "leaves_holding_whole_job": int((b.counts >= el.nodes_needed).sum()),
    }
    if choice is not None:
        p.explain["alternatives"] = choice.alternatives
        p.explain["cost_terms"] = choice.terms
    return p


def apply(state: ClusterState, fabric: Fabric, p: Placement) -> None:
    state.allocate_many((fabric.node_index[name], ids) for name, ids in p.gpu_ids.items())


def plan(fabric: Fabric, state: ClusterState, jobs: Iterable[JobRequest], cfg: PlannerConfig | None = None
         ) -> PlanResult:
    """Place a queue in priority order onto a copy of `state`; returns placements in the input order."""
    cfg = cfg or PlannerConfig()
    jobs = list(jobs)
    ix = index_for(fabric)
    work = state.copy()
    t0 = time.perf_counter()
    out: list[Placement | None] = [None] * len(jobs)
    for i in _order(jobs):
        left = cfg.batch_time_limit_s - (time.perf_counter() - t0)
        p = place_one(ix, work, jobs[i], cfg, left)
        if p.status == "placed":
            apply(work, fabric, p)
        out[i] = p
    return PlanResult([p for p in out if p is not None], work, time.perf_counter() - t0)
