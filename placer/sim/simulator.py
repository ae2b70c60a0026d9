"""Trace replay: the event loop that ties the clock, the cluster, the scheduler and a policy together.

The same scheduler for every policy; policies differ only in where jobs go (placer/sim/policies.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from topology import Fabric, RequestError

from ..bounds import Bounds, empty_fabric_bounds
from ..index import index_for
from ..jobs import JobRequest
from ..timeline import (
    DEFAULT_HOLD_FROM_ROOM,
    DEFAULT_HOLD_IDLE_S,
    DEFAULT_HOLD_IDLE_SHARE,
    DEFAULT_HOLD_MAX_S,
    DEFAULT_HOLD_S,
    DEFAULT_HOLD_SHARE,
)
from ..types import SCHEDULER_WORK_LIMIT, PlannerConfig
from .cluster import SimCluster
from .events import Clock
from .metrics import measure, set_bounds, summarize_records
from .policies import PLACER_POLICIES, make_policy
from .records import Alloc, JobRecord
from .scheduler import SCHEDULERS, make_scheduler

REPLAY_WALL_CAP_S = 1.0  # a replay's CP-SAT stops on work units (SCHEDULER_WORK_LIMIT); this is a safety net


def replay_planner(work_limit: float | None = SCHEDULER_WORK_LIMIT,
                   small_jobs_by_end: bool = PlannerConfig.small_jobs_by_end) -> PlannerConfig:
    """The planner a replay runs: CP-SAT bounded by work, reproducible (work_limit None: by 10 ms of wall,
    not reproducible); policy placer-greedy takes the greedy answer, which needs no limit."""
    if work_limit is None:
        return PlannerConfig(time_limit_s=0.01, small_jobs_by_end=small_jobs_by_end)
    return PlannerConfig(time_limit_s=REPLAY_WALL_CAP_S, cpsat_work_limit=work_limit,
                         small_jobs_by_end=small_jobs_by_end)


@dataclass(frozen=True)
class SimConfig:
    backfill: str = "easy"  # easy | none
    # jobs backfill tries per pass: Slurm's bf_max_job_test and its default, so the baselines run as sites
    # run them; 100 until 2026-12-06, the depth of the older tables in docs/benchmarks.md ("Backfill depth")
    bf_depth: int = 500
    # like every multi-node job asking sbatch --switches=<its leaf bound>@<this>: a placement spanning
    # more leaves than the job needs on an empty fabric waits up to this long (0: off), for every policy
    # (for the baselines; placer's own scheduler has hold_s instead)
    switches_wait_s: float = 0.0
    # placer's scheduler (policy placer): hold a multi-node job for a placement within its leaf bound
    # only while the timeline of job ends says one frees within this limit (0: never hold)
    hold_s: float = DEFAULT_HOLD_S
    # a long job may wait longer: up to this share of its own run time (time limit live), at most
    # hold_max_s (the weighted traffic comes from a few large, long jobs; share 0: hold_s for every job)
    hold_share: float = DEFAULT_HOLD_SHARE
    hold_max_s: float = DEFAULT_HOLD_MAX_S
    # the hold counts from the first time the job could start at all (enough eligible nodes), not from
    # the first time it fitted by node count (placer/timeline.py DEFAULT_HOLD_FROM_ROOM)
    hold_from_room: bool = DEFAULT_HOLD_FROM_ROOM
    # a hold expected to last longer than this (and hold_idle_share of the job's run time) is not taken while
    # the free GPUs, less what the rest of the queue asks for, would still hold the job (placer/timeline.py
    # hold_idles; inf: every hold is taken)
    hold_idle_s: float = DEFAULT_HOLD_IDLE_S
    hold_idle_share: float = DEFAULT_HOLD_IDLE_SHARE
    # backfill may move the head's reserved block (same shadow, no more leaves) to let a one-node job in,
    # at most this many times a pass (placer's scheduler only)
    reservation_moves: int = 0
    planner: PlannerConfig = field(default_factory=lambda: replay_planner())


class Simulator:
    def __init__(self, fabric: Fabric, policy: str, cfg: SimConfig | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.fabric, self.policy_name, self.cfg = fabric, policy, cfg or SimConfig()
        if self.cfg.backfill not in SCHEDULERS:
            raise RequestError(f"backfill must be one of {', '.join(SCHEDULERS)}, got {self.cfg.backfill!r}")
        self.ix = index_for(fabric)
        self.policy = make_policy(policy, self.cfg.planner)
        self.progress = progress
        self.cluster = SimCluster(fabric, self.ix)
        self._static: dict[tuple[int, int], Bounds] = {}  # empty-fabric bounds per (node size, nodes needed)

    def run(self, jobs: list[JobRequest]) -> list[JobRecord]:
        c = self.cluster
        c.records = [JobRecord(j) for j in jobs]
        clock = Clock(jobs)
        sched = make_scheduler(self.cfg.backfill, ix=self.ix, cluster=c, clock=clock, policy=self.policy,
                               start=lambda j, alloc, t: self._start(clock, j, alloc, t),
                               bf_depth=self.cfg.bf_depth, **self._waiting())
        queue: list[int] = []
        while clock.pending(bool(queue)):
            t = clock.advance(bool(queue))
            for j in clock.ended_by(t):
                c.finish(j, c.records[j])
            for j in clock.arrivals_by(t):
                if self._admit(c.records[j]):
                    queue.append(j)
            sched.schedule(queue, t)
            if self.progress:
                self.progress(clock.arrived)
        return c.records

    def _waiting(self) -> dict[str, Any]:
        """Placer's scheduler holds with a look at the timeline; the baselines wait as Slurm's --switches."""
        if self.policy_name in PLACER_POLICIES:
            return {"switches_wait_s": self.cfg.hold_s, "lookahead": True, "hold_share": self.cfg.hold_share,
                    "hold_max_s": self.cfg.hold_max_s, "hold_from_room": self.cfg.hold_from_room,
                    "reservation_moves": self.cfg.reservation_moves, "hold_idle_s": self.cfg.hold_idle_s,
                    "hold_idle_share": self.cfg.hold_idle_share}
        return {"switches_wait_s": self.cfg.switches_wait_s, "lookahead": False}

    def _admit(self, rec: JobRecord) -> bool:
        """Shape and empty-fabric bounds of an arriving job; False (and unplaceable) when it can never run."""
        job = rec.job
        rec.size = job.gpus_per_node or self.cluster.max_gpus
        rec.multi, rec.nodes_needed = job.multi_node(rec.size), job.nodes_needed(rec.size)
        set_bounds(rec, self._bounds(rec.size, rec.nodes_needed))
        if (rec.multi and rec.leaf_bound == 0) or (not rec.multi and rec.size < job.gpus) or (job.duration or 0) <= 0:
            rec.status = "unplaceable"
            rec.reason = "larger than the fabric's nodes of its size" if (job.duration or 0) > 0 else "no duration"
            return False
        return True

    def _bounds(self, size: int, need: int) -> Bounds:
        key = (size, need)
        if key not in self._static:
            static = self.cluster.usable & (self.fabric.node_gpus == size)
            self._static[key] = empty_fabric_bounds(self.ix, static, need)
        return self._static[key]

    def _start(self, clock: Clock, j: int, alloc: Alloc, t: float) -> None:
        rec = self.cluster.records[j]
        end = t + float(rec.job.duration or 0.0)
        self.cluster.start(j, alloc, end)
        rec.status, rec.start, rec.end, rec.alloc = "placed", t, end, alloc
        measure(self.ix, rec)
        clock.job_ends(end, j)


def simulate(fabric: Fabric, jobs: list[JobRequest], policy: str, cfg: SimConfig | None = None,
             progress: Callable[[int], None] | None = None) -> tuple[list[JobRecord], dict[str, Any]]:
    records = Simulator(fabric, policy, cfg, progress).run(jobs)
    return records, summarize_records(fabric, records)



