"""Why a pending job has not started, or will not start within its leaf bound (issue 20, `placer why`).

One answer, as a sentence and as data, from what the planner and the scheduler already know: what the
job needs (nodes, the fewest leaves it could use on an empty fabric, features, partition); the best
placement now and its cost; the block within its bound that frees soonest by the running jobs' ends
(placer/timeline.py), the running jobs that must end first and when; and what placer's scheduler does
with it (start now, hold it for that block until its hold limit, or let it take what there is).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from topology import ClusterState, Fabric
from topology.hostlists import compress

from .engine import place_one
from .index import FabricIndex
from .jobs import JobRequest
from .timeline import (
    HoldRule,
    OffAt,
    Release,
    Timeline,
    first_kept_off,
    first_room,
    first_within_bound,
    hold_deadline,
    hold_idles,
    in_time_order,
    room_for,
    static_leaf_bound,
)
from .types import PlannerConfig

DEFAULT_HOLD = HoldRule()


@dataclass(frozen=True)
class Running:
    """A running job as `why` needs it: who, until when (None: no known end), which GPUs."""

    job_id: str
    end: float | None
    alloc: Sequence[tuple[int, Sequence[int]]]
    start: float | None = None  # when it started (its work so far is lost if requeued); None: unknown

    def row(self) -> tuple[str, float | None, float | None, Sequence[tuple[int, Sequence[int]]]]:
        """As the validator takes it (placer/validate.py: RunningJob)."""
        return self.job_id, self.start, self.end, self.alloc


def why(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig, running: Sequence[Running],
        now: float, hold: HoldRule = DEFAULT_HOLD, pinned_to: Sequence[str] = (),
        free_at: np.ndarray | None = None, releases: Timeline | None = None,
        queued_others: Callable[[np.ndarray], int] | None = None, off_at: OffAt | None = None) -> dict[str, Any]:
    """The answer for one pending job (`state` is the cluster now, without it). `free_at`: as
    first_within_bound takes it, and `releases`: `running`'s ends in time order (placer apply has both
    for the pass). `queued_others`: what the other pending jobs that could use a node of the room given
    (bool per node) ask for, this one left out (None: not known, and a hold is judged without hold_idles).
    `off_at`: as first_kept_off takes it (live: Slurm's reservations from a later start)."""
    f = ix.fabric
    p = place_one(ix, state, job, replace(cfg, explain=True))
    bound, multi = static_leaf_bound(ix, state, job, cfg)
    submit = job.submit_time if job.submit_time is not None else now
    if releases is None:
        releases = in_time_order(Release(max(r.end, now), r.alloc) for r in running if r.end is not None)
    # as apply counts it: from submission (with hold_from_room, a job with no room now: from when room comes)
    no_room = hold.from_room and multi and p.status != "placed"
    room = first_room(ix, state, job, cfg, releases, now, free_at=free_at) if no_room else now
    until = hold_deadline(submit, hold.limit(job.time_limit_s or job.duration), room, now)
    out: dict[str, Any] = {
        "job": job.job_id,
        "needs": {"gpus": job.gpus, "multi_node": multi, "leaf_bound": bound, "features": list(job.features),
                  "constraint": job.constraint, "gpu_model": job.gpu_model, "partition_nodes":
                  None if job.partition_nodes is None else len(job.partition_nodes),
                  "excluded_nodes": len(job.exclude)},
        "now": {"status": p.status, "nodes": compress(p.nodes), "racks": racks(f, p.nodes), "leaves": p.leaves,
                "cost": p.cost,
                "reason": p.reason, "excluded": (p.explain or {}).get("nodes_excluded", {})},
        "hold_until": until, "within_bound": None, "hold_idles": False, "idle": None,
        "pinned_to": compress(pinned_to) if pinned_to else None, "waits_for": None,
    }
    beyond = p.status != "placed" or (bound is not None and p.leaves > bound)
    if beyond and bound is not None and p.status != "unplaceable":
        _, later = first_kept_off(job, now, lambda jb: first_within_bound(ix, state, jb, cfg, releases, now,
                                                                           float("inf"), bound, free_at=free_at),
                                  off_at)
        if later is not None:
            at, q, _ = later
            nodes = {f.node_index[n] for n in q.nodes}
            ending = [r for r in running if r.end is not None and r.end <= at and any(n in nodes for n, _ in r.alloc)]
            blockers = [{"job": r.job_id, "end": r.end, "in_s": round(r.end - now) if r.end else None,
                         "nodes": compress([f.node_names[n] for n, _ in r.alloc if n in nodes])}
                        for r in sorted(ending, key=lambda r: r.end or 0.0)]  # the few that block, not all
            out["within_bound"] = {"at": at, "in_s": round(at - now), "nodes": compress(q.nodes),
                                   "racks": racks(f, q.nodes),
                                   "leaves": q.leaves, "cost": q.cost, "blocked_by": blockers}
            mine = room_for(ix, state, job, cfg)
            free, floor = int(state.free_gpus[mine].sum()), hold.idle_floor(job.time_limit_s or job.duration)
            others = queued_others(mine) if queued_others is not None else None
            out["idle"] = {"free_gpus": free, "others_ask": others, "floor_s": floor}
            out["hold_idles"] = p.status == "placed" and at <= until and others is not None and hold_idles(
                at - now, free, others, job.gpus, floor)
    out["verdict"], out["sentence"] = _verdict(out, now, multi)
    return out


def not_startable_yet(answer: dict[str, Any], waits: str) -> dict[str, Any]:
    """`answer` for a job Slurm would not start yet (`waits`: what it waits for, as Slurm shows it; "" if
    nothing), said first, as `placer apply` says it; the rest is what placer would do once it could."""
    if waits:
        answer["waits_for"] = waits
        answer["sentence"] = f"Slurm would not start it yet: it waits for {waits}. Once it could: {answer['sentence']}"
    return answer


def racks(f: Fabric, names: Sequence[str]) -> list[str]:
    """The racks these nodes sit in, where the inventory says (for the technician)."""
    return sorted({loc.rack for n in names if (loc := f.locations.get(n)) is not None and loc.rack})


def _verdict(a: dict[str, Any], now: float, multi: bool) -> tuple[str, str]:
    n, wb, need = a["now"], a["within_bound"], a["needs"]
    k = need["leaf_bound"]
    who = f"job {a['job']} ({need['gpus']} GPUs)"
    if a["pinned_to"]:
        return "reserved", f"{who} is pinned by placer to {a['pinned_to']} and starts there when Slurm frees it."
    if n["status"] == "unplaceable":
        return "unplaceable", f"{who} can never start here: {n['reason']}."
    if n["status"] == "placed" and (k is None or n["leaves"] <= k):
        where = f"{n['nodes']} ({n['leaves']} leaf{'s' if n['leaves'] != 1 else ''}, its bound)"
        return "fits-now", f"{who} fits now on {where}; if it is still pending, Slurm holds it for another reason."
    later = ""
    if wb is not None:
        ends = ", ".join(f"{b['job']} (ends in {b['in_s']:,} s)" for b in wb["blocked_by"][:5])
        later = (f"the block within its bound that frees soonest is {wb['nodes']} in {wb['in_s']:,} s"
                 + (f", once {ends} end" if ends else ""))
    if n["status"] != "placed":
        return "waits", f"{who} waits: {n['reason']}" + (f"; {later}." if later else "; no known job end frees room.")
    beyond = f"it would start now on {n['leaves']} leaves (bound {k}) on {n['nodes']}"
    if a["hold_idles"]:
        idle = a["idle"]
        return "starts-beyond-bound", f"{who}: {beyond}, and placer starts it there: {later}, but the GPUs free " \
            f"now would stay idle meanwhile ({idle['free_gpus']:,} free, {idle['others_ask']:,} asked for by the " \
            f"other pending jobs; placer takes no such hold over {idle['floor_s']:,.0f} s)."
    if wb is not None and multi and wb["at"] <= a["hold_until"]:
        return "held-for-bound", f"{who}: {beyond}; placer holds it for its bound until {wb['in_s']:,} s from now " \
                                 f"(hold limit {max(0, round(a['hold_until'] - now)):,} s): {later}."
    why_not = f"{later}, after its hold limit" if later else "no block within its bound frees in time"
    return "starts-beyond-bound", f"{who}: {beyond}, and placer starts it there: {why_not}."
