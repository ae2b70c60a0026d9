"""When jobs start: FCFS with EASY backfill (or none), the same for every placement policy.

As Slurm's sched/backfill does in spirit: the queue head starts when it fits; otherwise it gets a
reservation at the earliest time it could fit (the shadow time), and later jobs may start now if they
fit and do not delay that reservation (they end before the shadow time, or are placed on nodes the head
does not need then). At most `bf_depth` jobs are tried per pass, like Slurm's bf_max_job_test. Fit
tests are O(1) from maintained counts; the policy is asked only for a job that fits. Under
`switches_wait_s` (Slurm's --switches=<bound>@wait for every multi-node job) the wait runs from the
job's first evaluation, and a waiting head reserves its first projected placement within the bound
before its deadline (else its placement at the deadline).

Placer's own scheduler (`lookahead`, policies placer and placer-greedy) holds with a look at the
timeline instead (placer/timeline.py): a multi-node job waits for a placement within its bound only
while the running jobs' ends say one frees before its hold runs out (`hold_limit`: the hold, or a
share of a long job's run time); else it starts now on what there is. A waiting head reserves exactly
that block. A hold that would last past `hold_idle_s` (and `hold_idle_share` of the job's run time) is not
taken while the free GPUs, less what the rest of the queue asks for, would still hold the job
(`hold_idles`: nothing would use the idle room).

A new scheduler implements `Scheduler` (one method: start what may start now) and is chosen in
`make_scheduler`; the clock, the cluster's bookkeeping, the policies and the metrics stay as they are.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

import numpy as np

from topology import ClusterState

from ..bounds import fewest, fits_in, leaf_counts
from ..eligibility import eligibility
from ..index import FabricIndex
from ..timeline import first_time, hold_idles, hold_limit, idle_floor, walk
from .cluster import SimCluster
from .events import Clock
from .policies import Policy
from .records import Alloc, JobRecord

StartFn = Callable[[int, Alloc, float], None]
SCHEDULERS = ("easy", "none")  # the `backfill` setting: FCFS with EASY backfill, or plain FCFS


class Scheduler(Protocol):
    def schedule(self, queue: list[int], t: float) -> int:
        """Start (through the start function it was given) what may start at time t; remove those jobs
        from `queue`; return how many started."""


@dataclass
class Reservation:
    """The queue head's claim: its shadow time and what backfill must leave it."""

    shadow: float
    nodes: set[int] | None = None  # multi-node head: the node set it will start on
    counted: set[int] | None = None  # (fallback) nodes counted towards it
    count: int = 0
    free: dict[int, int] | None = None  # single-node head: nodes that will hold it, and their free GPUs
    projected: ClusterState | None = None  # multi-node head: the state at the shadow time it was chosen on
    leaves: int = 0  # multi-node head: leaves of its reserved block (a moved block may span no more)


class FcfsBackfill:
    def __init__(self, ix: FabricIndex, cluster: SimCluster, clock: Clock, policy: Policy, start: StartFn,
                 backfill: str, bf_depth: int, switches_wait_s: float, lookahead: bool = False,
                 hold_share: float = 0.0, hold_max_s: float = math.inf, hold_from_room: bool = False,
                 reservation_moves: int = 0, hold_idle_s: float = math.inf, hold_idle_share: float = 0.0) -> None:
        self.ix, self.cluster, self.clock, self.policy, self.start = ix, cluster, clock, policy, start
        self.backfill, self.bf_depth, self.switches_wait_s = backfill, bf_depth, switches_wait_s
        # placer's hold (lookahead): wait for a placement within the bound only when the timeline of job
        # ends says one frees before the hold runs out; Slurm's --switches (not lookahead) waits blindly
        self.lookahead, self.hold_share, self.hold_max_s = lookahead, hold_share, hold_max_s
        self.from_room = lookahead and hold_from_room  # placer's hold counts from room (`_hold_clock_waits`)
        self.reservation_moves = reservation_moves  # per pass (`_move_reservation`)
        self.hold_idle_s, self.hold_idle_share = hold_idle_s, hold_idle_share
        self.queued_gpus = 0  # what the queue of this pass asks for, less what started (`hold_idles`)

    @property
    def records(self) -> list[JobRecord]:
        return self.cluster.records

    # -- one pass --------------------------------------------------------------------------------------
    def schedule(self, queue: list[int], t: float) -> int:
        self.cluster.state.set_ends(self.cluster.node_free_time, t)  # placer's small-job rule reads them
        started = 0
        self.queued_gpus = sum(self.records[j].gpus_taken for j in queue) if self.hold_idle_s < math.inf else 0
        while queue:
            j = queue[0]
            alloc = self.try_now(self.records[j], t)
            if alloc is None:
                break
            self._run(j, alloc, t)
            queue.pop(0)
            started += 1
        if self.backfill != "easy" or len(queue) < 2:
            return started
        return started + self._backfill(queue, t)

    def _backfill(self, queue: list[int], t: float) -> int:
        head = self.records[queue[0]]
        res = self.shadow(head, t)
        reserved = None
        if res.nodes is not None:
            reserved = np.zeros(self.ix.fabric.n_nodes, dtype=bool)
            reserved[list(res.nodes)] = True
        started, k, tried, moves = 0, 1, 0, self.reservation_moves
        while k < len(queue) and tried < self.bf_depth:
            j = queue[k]
            tried += 1
            rec = self.records[j]
            end = t + float(rec.job.duration or 0.0)
            alloc = self.try_now(rec, t, reserved if end > res.shadow else None)
            if alloc is None and reserved is not None and end > res.shadow and moves > 0 and not rec.multi:
                moves -= 1
                alloc = self._move_reservation(head, res, rec, t, reserved)
            if alloc is None or not _keeps(head, res, alloc, end):
                k += 1
                continue
            _commit(head, res, alloc, end)
            if self.reservation_moves and res.projected is not None and end > res.shadow:
                res.projected.allocate_many(alloc)  # still running at the shadow: a moved block avoids it
            self._run(j, alloc, t)
            queue.pop(k)
            started += 1
        return started

    def _run(self, j: int, alloc: Alloc, t: float) -> None:
        self.queued_gpus -= self.records[j].gpus_taken
        self.start(j, alloc, t)

    def _move_reservation(self, head: JobRecord, res: Reservation, rec: JobRecord, t: float,
                          reserved: np.ndarray) -> Alloc | None:
        """A one-node job that fits now only on the head's reserved nodes: its placement there, when the
        head still has a block at the same shadow time on no more leaves with that job running (the
        reservation moves to that block, as the next pass would choose it); else None. Only a job that
        ends at most the hold past the shadow: one running longer keeps that room from the next large
        job too (unbounded, moves cost SuperPOD seeds 1 and 3 their wait or pairs; docs/benchmarks.md)."""
        if res.projected is None or t + float(rec.job.duration or 0.0) > res.shadow + self.switches_wait_s:
            return None
        alloc = self.try_now(rec, t)
        if alloc is None:
            return None
        projected = res.projected.copy()
        projected.allocate_many(alloc)
        moved = self.choose_on(projected, head)
        if moved is None or self.cluster.leaves(moved) > res.leaves:
            return None
        res.nodes, res.projected = {n for n, _ in moved}, projected
        projected.release_many(alloc)  # the caller commits it (with every other job running past the shadow)
        reserved[:] = False
        reserved[list(res.nodes)] = True
        return alloc

    # -- asking the policy -----------------------------------------------------------------------------
    def try_now(self, rec: JobRecord, t: float, avoid: np.ndarray | None = None) -> Alloc | None:
        """The policy's placement for `rec` now, or None. `avoid`: nodes reserved for the queue head
        that this job may not use (as Slurm's backfill tests a job only on the nodes free in its window)."""
        if not self.cluster.quick_fits(rec):
            return None
        if self._hold_clock_waits(rec, t, avoid):
            return None
        waiting = t < self.switch_deadline(rec, t)
        if waiting and self.lookahead:
            waiting = self._worth_waiting(rec, t)
        # no policy can stay within the bound when the whole free nodes of each leaf cannot: skip asking
        if waiting and self.bound_out_of_reach(rec, self.cluster.state):
            self._wake(rec)
            return None
        el = eligibility(self.ix, self.cluster.state, rec.job)
        if avoid is not None:
            el.now = el.now & ~avoid
        if int(el.now.sum()) < el.nodes_needed:
            return None
        alloc = self.policy(self.ix, self.cluster.state, rec.job, el)
        if alloc is not None and waiting and self.cluster.leaves(alloc) > rec.leaf_bound:
            self._wake(rec)
            return None
        if alloc is not None and rec.multi:
            rec.leaf_bound_now = fewest(leaf_counts(self.ix, el.now), rec.nodes_needed) or 0
        return alloc

    def choose_on(self, projected: ClusterState, rec: JobRecord) -> Alloc | None:
        el = eligibility(self.ix, projected, rec.job)
        return self.policy(self.ix, projected, rec.job, el) if int(el.now.sum()) >= el.nodes_needed else None

    # -- Slurm's --switches ----------------------------------------------------------------------------
    def switch_deadline(self, rec: JobRecord, t: float, start: float | None = None) -> float:
        """When a multi-node job stops waiting for a placement within its bound (-inf: it never waits).
        Slurm's --switches wait counts from the scheduler's first evaluation of its placement, as Slurm's
        wait4switch_start does, not from submission: a job deep in a long queue keeps its full wait.
        Placer's hold does the same by default; with `hold_from_room` it counts from the first time the
        job could start (`_hold_clock_waits`), and before then its deadline is `start` (or t) plus the hold."""
        if not rec.multi or self.switches_wait_s <= 0 or rec.hold_done:
            return -math.inf
        hold = hold_limit(rec.job.duration, self.switches_wait_s, self.hold_share, self.hold_max_s)
        if rec.switch_wait_from is None:
            if self.from_room:
                return (t if start is None else start) + hold
            rec.switch_wait_from = t
        return rec.switch_wait_from + hold

    def _hold_clock_waits(self, rec: JobRecord, t: float, avoid: np.ndarray | None) -> bool:
        """Placer's hold clock under `hold_from_room`: True while a multi-node job could not start now on
        any nodes (it waits for room or for the head's reservation, not for locality); the first time it
        could, start it."""
        if not self.from_room or not rec.multi or rec.switch_wait_from is not None or self.switches_wait_s <= 0:
            return False
        now = eligibility(self.ix, self.cluster.state, rec.job).now
        if int((now & ~avoid if avoid is not None else now).sum()) < rec.nodes_needed:
            return True
        rec.switch_wait_from = t
        return False

    def _worth_waiting(self, rec: JobRecord, t: float) -> bool:
        """Placer's hold: wait while the timeline says a placement within the bound frees before the
        deadline (wake up then); with none coming, stop waiting for good and take what there is."""
        if rec.hold_eta is not None and t < rec.hold_eta:
            return not self._hold_idles(rec, t)
        deadline = self.switch_deadline(rec, t)
        if not self.bound_out_of_reach(rec, self.cluster.state):
            return True  # within reach now: the policy's answer decides
        releases = ((end, self.records[j].alloc) for end, j in self.cluster.ends)
        eta = first_time(self.cluster.state, releases, deadline, lambda s: not self.bound_out_of_reach(rec, s))
        if eta is None:
            rec.hold_done = True
            return False
        rec.hold_eta = eta
        self.clock.wake_at(id(rec), eta)
        return not self._hold_idles(rec, t)

    def _hold_idles(self, rec: JobRecord, t: float) -> bool:
        """`hold_idles` for a job held until its eta: the room it would leave idle, nothing queued would use."""
        floor = idle_floor(rec.job.duration, self.hold_idle_s, self.hold_idle_share)
        if rec.hold_eta is None or rec.hold_eta - t <= floor:
            return False
        free = int(self.cluster.free_hist @ np.arange(self.cluster.max_gpus + 1))  # room_for's: any node takes any job
        own = rec.gpus_taken
        return hold_idles(rec.hold_eta - t, free, self.queued_gpus - own, own, floor)

    def _wake(self, rec: JobRecord) -> None:
        """Wait (boundedly) for a placement within the bound; wake up at the deadline."""
        self.clock.wake_at(id(rec), self.switch_deadline(rec, math.inf))

    def bound_out_of_reach(self, rec: JobRecord, state: ClusterState) -> bool:
        """No policy can place `rec` within its leaf bound on `state`: the whole free nodes of each leaf
        cannot hold it in that many leaves."""
        counts = self.cluster.leaf_whole_free(rec.size, state)
        return not fits_in(counts, rec.nodes_needed, rec.leaf_bound)

    # -- EASY backfill's reservation for the queue head ------------------------------------------------
    def shadow(self, rec: JobRecord, t: float) -> Reservation:
        return self._shadow_multi(rec, t) if rec.multi else self._shadow_single(rec)

    def _shadow_multi(self, rec: JobRecord, t: float) -> Reservation:
        c = self.cluster
        ok = c.usable & (self.ix.fabric.node_gpus == rec.size)
        times = np.maximum(c.node_free_time[ok], t)
        n = rec.nodes_needed
        if times.size < n:
            return Reservation(math.inf)
        shadow = float(np.partition(times, n - 1)[n - 1])
        # as Slurm's backfill does: the head's reservation is the node set the policy would choose on the
        # projected state at the shadow time; backfill must keep off those nodes
        projected = c.state.copy()
        i = c.release_until(projected, 0, shadow)
        alloc = self.choose_on(projected, rec)
        if alloc is None:  # cannot happen by construction; fall back to counting
            counted = set(np.nonzero(ok & (c.node_free_time <= shadow))[0].tolist())
            return Reservation(shadow, counted=counted, count=len(counted))
        deadline = self.switch_deadline(rec, t, start=shadow)
        at_shadow: ClusterState | None = projected  # what a moved block is chosen on (`_move_reservation`)
        if t < deadline and c.leaves(alloc) > rec.leaf_bound:
            # still waiting under --switches: a placement beyond the bound would not start, so the
            # reservation is the first projected one within it before the deadline, else the deadline's
            later = self._within_bound_later(projected, i, rec, deadline)
            if later is not None and self.lookahead and c.leaves(later[1]) > rec.leaf_bound:
                later = None  # placer's hold never waits for a placement beyond the bound
            if later is not None:
                shadow, alloc, at_shadow = later[0], later[1], None  # (a later state: no moves)
        return Reservation(shadow, nodes={node for node, _ in alloc}, projected=at_shadow, leaves=c.leaves(alloc))

    def _shadow_single(self, rec: JobRecord) -> Reservation:
        c = self.cluster
        g = rec.job.gpus
        free: dict[int, int] = {}
        shadow = math.inf
        for end, j in c.ends:
            if end > shadow:
                break
            for n, ids in self.records[j].alloc:
                if not c.usable[n]:
                    continue
                free[n] = free.get(n, int(c.state.free_gpus[n])) + len(ids)
                if free[n] >= g:
                    shadow = min(shadow, end)
        return Reservation(shadow, free={n: f for n, f in free.items() if f >= g})

    def _within_bound_later(self, projected: ClusterState, i: int, rec: JobRecord,
                            deadline: float) -> tuple[float, Alloc] | None:
        """Walk later job ends (ends[i:]) up to `deadline`: the first time the policy places `rec` within
        its bound; failing that, its placement at the deadline (when the job will start anyway): the fewest
        leaves that waiting can buy, protected from backfill meanwhile."""
        c = self.cluster
        last = projected
        later = ((end, self.records[j].alloc) for end, j in islice(c.ends, i, None))
        for when, state in walk(projected, later, deadline):
            last = state
            if self.bound_out_of_reach(rec, state):
                continue
            alloc = self.choose_on(state, rec)
            if alloc is not None and c.leaves(alloc) <= rec.leaf_bound:
                return when, alloc
        alloc = self.choose_on(last, rec)
        return (deadline, alloc) if alloc is not None else None


def _keeps(head: JobRecord, res: Reservation, alloc: Alloc, end: float) -> bool:
    """Starting `alloc` (ending at `end`) now leaves the head's reservation intact."""
    if end <= res.shadow:  # (an unreachable head has an infinite shadow: nothing to keep)
        return True
    if res.nodes is not None:
        return not any(n in res.nodes for n, _ in alloc)
    if res.counted is not None:
        lost = sum(1 for n, _ in alloc if n in res.counted)
        return res.count - lost >= head.nodes_needed
    fitting = res.free or {}
    g = head.job.gpus
    still = sum(1 for n, f in fitting.items() if f - sum(len(ids) for m, ids in alloc if m == n) >= g)
    return still >= 1


def _commit(head: JobRecord, res: Reservation, alloc: Alloc, end: float) -> None:
    """Backfill started `alloc`: what it took from the head's counted or fitting nodes is gone."""
    if end <= res.shadow or res.nodes is not None:
        return
    if res.counted is not None:
        for n, _ in alloc:
            if n in res.counted:
                res.counted.discard(n)
                res.count -= 1
    elif res.free is not None:
        for n, ids in alloc:
            if n in res.free:
                res.free[n] -= len(ids)


def make_scheduler(name: str, **kw: Any) -> Scheduler:
    """FCFS with EASY backfill ("easy") or without ("none"); the place to add another scheduler."""
    return FcfsBackfill(backfill=name, **kw)
