"""`placer apply`: pin held jobs to planned nodes, then release them.

Every run starts from Slurm's state, so it is idempotent and a crash anywhere loses nothing: a job is
only ever pinned (ReqNodeList, NumNodes) and released, never cancelled; one pinned but not yet
released is simply planned and pinned again. Only jobs the hook held are touched (tag `placer:steer`
in AdminComment, which users cannot write, and still the hook's own hold: JobHeldUser; an admin's
hold is never released). A job held longer than `max_hold_s` (counted from when Slurm could start it)
is released unpinned, and the log says so. A job waiting for its dependency or begin time stays held,
unpinned, until Slurm could start it (pinned sooner, its nodes would be kept idle for it); one whose
dependency can never be met is released as is. Pending jobs with required nodes keep them in the plan's
state, so two runs never double-book.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from placer import JobRequest, PlannerConfig
from placer.engine import apply, avoided_nodes, place_one, spare_nodes
from placer.index import FabricIndex, index_for
from placer.reserve import node_free_times
from placer.timeline import (
    HoldRule,
    Later,
    Release,
    Timeline,
    first_kept_off,
    first_room,
    first_within_bound,
    hold_deadline,
    hold_idles,
    in_time_order,
    kept_off_ahead,
    room_for,
    static_leaf_bound,
)
from placer.types import Placement
from placer.validate import validate
from placer.why import Running, why
from topology import BackendError, ClusterState, Fabric
from topology.hostlists import compress

from .backend import (
    STEER_TAG,
    Backend,
    HoldClock,
    PendingDemand,
    SlurmJob,
    SlurmSnapshot,
    StateReport,
    dependency_failed,
    held_since,
    hold_for_pending,
    ineligible,
    reserved_nodes,
    running_of,
    to_cluster_state,
)
from .cpus import CpuRoom, cpu_room
from .hold_clock_file import clock_text, load_clock, one_apply, save_if_changed
from .requests import off_reservations_at, off_short_of_cpus, placeable_from_slurm

log = logging.getLogger(__name__)


@dataclass
class ApplyReport:
    pinned: list[tuple[int, str]] = field(default_factory=list)
    released_unpinned: list[tuple[int, str]] = field(default_factory=list)
    waiting: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # pinned to a block within the job's leaf bound that frees later (Slurm starts it there when the
    # running jobs on it end): (job, nodes, expected start)
    reserved: list[tuple[int, str, float]] = field(default_factory=list)
    # a reservation moved to a block within its bound that frees sooner: (job, old nodes, new nodes, start)
    moved: list[tuple[int, str, str, float]] = field(default_factory=list)


def steered_held(snap: SlurmSnapshot) -> list[SlurmJob]:
    return sorted((j for j in snap.jobs if j.steered), key=lambda j: (j.submit_time, j.job_id))


def stranded_pins(fabric: Fabric, snap: SlurmSnapshot, state: ClusterState, now: float) -> list[SlurmJob]:
    """Jobs placer pinned and released (steer tag, pending, not held) with a required node that is no
    longer usable (drained or down since), or in a Slurm reservation the job would run into from when its
    block frees (one made since, `placer reserve --apply`'s among them): Slurm would keep them pending there
    for good, or until the reservation ends, so they are planned again like held jobs (a reservation made on
    EndTimes meets drains that were not foreseen)."""
    out = []
    ends = _node_ends(snap) if snap.reservations else {}
    for j in snap.jobs:
        if j.state != "PENDING" or j.held or STEER_TAG not in j.admin_comment or not j.required_nodes:
            continue
        idx = [fabric.node_index.get(n) for n in j.required_nodes]
        bad = [n for n, i in zip(j.required_nodes, idx) if i is None or not state.usable[i]]
        frees = frees_at(ends, j.required_nodes, now)
        reserved = set(reserved_nodes(snap.reservations, frees, j.time_limit_s)).intersection(j.required_nodes)
        if bad or reserved:
            why = f"now unusable: {','.join(bad)}" if bad else f"in a Slurm reservation: {compress(sorted(reserved))}"
            log.warning("job %d is pinned to %s, %s: planning it again", j.job_id, compress(j.required_nodes), why)
            out.append(j)
    return sorted(out, key=lambda j: (j.submit_time, j.job_id))


def frees_at(ends: dict[str, float], nodes: tuple[str, ...], now: float) -> float:
    """When `nodes` are all free by Slurm's EndTimes (`_node_ends`; inf: a job on one has none)."""
    return max([now, *(ends.get(n, now) for n in nodes)])


def _node_ends(snap: SlurmSnapshot) -> dict[str, float]:
    """Per busy node, when its last running job ends by Slurm's EndTimes (inf: one has none)."""
    out: dict[str, float] = {}
    for r in snap.jobs:
        if r.running:
            end = float(r.end_time) if r.end_time > 0 else np.inf
            for n in r.nodes:
                out[n] = max(out.get(n, end), end)
    return out


def waiting_reservations(snap: SlurmSnapshot) -> list[SlurmJob]:
    """Jobs placer pinned and released to a block of several nodes some of which are still busy: the
    reservations made on Slurm's EndTimes. EndTimes are time limits and jobs end earlier, so another
    block within the job's bound may free first; each pass looks (`_move_if_sooner`)."""
    busy = {n for j in snap.jobs if j.running for n in j.nodes}
    return sorted((j for j in snap.jobs if j.state == "PENDING" and not j.held and STEER_TAG in j.admin_comment
                   and len(j.required_nodes) > 1 and busy.intersection(j.required_nodes)),
                  key=lambda j: (j.submit_time, j.job_id))


def _release_on_mismatch(backend: Backend, snap: SlurmSnapshot, report: StateReport, out: ApplyReport
                         ) -> ApplyReport:
    """The inventory does not describe this cluster: pin nothing, give every held job back to Slurm."""
    why = f"the inventory does not match Slurm ({report.mismatch_text()})"
    log.error("%s: pinning nothing, releasing every job the hook held", why)
    out.errors.append(why)
    for j in steered_held(snap):
        try:
            backend.release(j.job_id)
            out.released_unpinned.append((j.job_id, why))
        except BackendError as exc:
            out.errors.append(f"job {j.job_id}: {exc}")
    return out


def apply_once(fabric: Fabric, backend: Backend, cfg: PlannerConfig, max_hold_s: float,
               now: float | None = None, hold: HoldRule | None = None, clock: HoldClock | None = None) -> ApplyReport:
    """One pass over Slurm's state; `clock` (kept by a watch across passes) knows when held jobs that
    waited for a dependency found it met."""
    now = time.time() if now is None else now
    out = ApplyReport()
    snap = backend.snapshot()
    report = to_cluster_state(fabric, snap)
    if report.mismatch:
        return _release_on_mismatch(backend, snap, report, out)
    stuck = stranded_pins(fabric, snap, report.state, now)
    snap = replace(snap, jobs=tuple(j for j in snap.jobs if j not in stuck))
    movable = waiting_reservations(snap)
    hold_for_pending(fabric, report.state, snap, now)
    held = _held_to_place(backend, snap, now, max_hold_s, clock or HoldClock(), out)
    todo: list[SlurmJob] = [*stuck, *movable, *held]
    gpu_jobs: list[tuple[SlurmJob, JobRequest]] = []
    partitions, cpus = snap.partition_nodes(), cpu_room(fabric, snap.nodes, snap.jobs, now)
    for j in todo:
        # the hook steers only jobs without -w, so required nodes on a held job are our own earlier pin
        job, why = placeable_from_slurm(j, partitions, own_pin=True, reservations=snap.reservations, now=now,
                                        cpu_room=cpus)
        if job is not None:
            gpu_jobs.append((j, job))
            continue
        if j in movable:  # a reservation placer cannot plan any more stays as it is
            continue
        if not j.held:  # a stranded pin placer cannot plan any more: said, left to the admin
            out.errors.append(f"job {j.job_id}: pinned to an unusable node and not placeable: {why}")
            continue
        try:
            backend.release(j.job_id)
            out.released_unpinned.append((j.job_id, why))
        except BackendError as exc:
            out.errors.append(f"job {j.job_id}: {exc}")
    if gpu_jobs:
        _schedule(Pass(fabric, backend, cfg, now, hold or HoldRule(), report, snap, out,
                       {j.job_id for j in movable}, cpus), gpu_jobs)
    return out


def _held_to_place(backend: Backend, snap: SlurmSnapshot, now: float, max_hold_s: float, clock: HoldClock,
                   out: ApplyReport) -> list[SlurmJob]:
    """The held jobs this pass places; those Slurm could not start yet stay held (said), those past the
    hold limit or with a dependency that can never be met are released unpinned. A job's submit time is
    its hold clock's start for the scheduler's locality hold too (a chained job's, when its dependency was
    seen met)."""
    held = steered_held(snap)
    clock.keep_only({j.job_id for j in held})
    todo = []
    for j in held:
        waits = ineligible(j, now)
        since = clock.since(j.job_id, held_since(j), bool(waits), now)
        if dependency_failed(j):  # Slurm's to keep pending or cancel, as without placer
            _release_unpinned(backend, j, f"its dependency can never be met: {j.dependency}", out)
        elif j.gpus > 0 and waits:
            # pinned now, its nodes would be kept for it until Slurm could start it: placed when it can be
            out.waiting.append((j.job_id, f"Slurm would not start it yet: it waits for {waits}"))
        elif j.gpus <= 0 or now - since <= max_hold_s:
            todo.append(replace(j, submit_time=int(since)))  # no GPUs: nothing to place; released as is below
        else:
            _release_unpinned(backend, j, f"held {now - since:.0f} s > {max_hold_s:g} s", out)
    return todo


def _release_unpinned(backend: Backend, j: SlurmJob, why: str, out: ApplyReport) -> None:
    try:
        backend.release(j.job_id)
    except BackendError as exc:
        out.errors.append(str(exc))
        return
    out.released_unpinned.append((j.job_id, why))
    log.warning("job %d released unpinned: %s", j.job_id, why)


@dataclass
class Pass:
    """What one apply pass decides with."""

    fabric: Fabric
    backend: Backend
    cfg: PlannerConfig
    now: float
    hold: HoldRule
    report: StateReport
    snap: SlurmSnapshot
    out: ApplyReport
    movable: set[int] = field(default_factory=set)  # ids of waiting reservations (may move, never wait)
    cpus: CpuRoom | None = None  # the snapshot's CPU room (plugins/cpus.py)
    cpus_pinned: dict[int, int] = field(default_factory=dict)  # CPUs jobs pinned in this pass need, per node
    _running: list[Running] | None = None
    _free_at: np.ndarray | None = None
    _demand: PendingDemand | None = None
    _node_ends: dict[str, float] | None = None

    def running(self) -> list[Running]:
        """The running jobs as `why` reads them, built once a pass (only when a waiting job is explained)."""
        if self._running is None:
            self._running = running_of(self.fabric, self.report.running)
        return self._running

    def free_at(self) -> np.ndarray:
        """Per node, when it is whole free by Slurm's EndTimes at the start of the pass: a lower bound that
        lets a look ahead skip the ends before its leaf test can pass (jobs placed in the pass only delay)."""
        if self._free_at is None:
            self._free_at = node_free_times(index_for(self.fabric), self.report.state, self.running(), self.now)
        return self._free_at

    def node_ends(self) -> dict[str, float]:
        """Per busy node, when its running jobs end by Slurm's EndTimes (built once a pass)."""
        if self._node_ends is None:
            self._node_ends = _node_ends(self.snap)
        return self._node_ends

    def demand(self) -> PendingDemand:
        """What the pending jobs ask for (the idle rule), built once a pass when first needed (rarely: only
        for a hold past its floor); jobs pinned now in the pass are not in it."""
        if self._demand is None:
            now = {jid for jid, _ in self.out.pinned}
            self._demand = PendingDemand.of((j for j in self.snap.jobs if j.job_id not in now), self.fabric,
                                            self.snap.partition_nodes(), self.now)
        return self._demand

    def started(self, j: SlurmJob) -> None:
        """`j` was pinned to start now: off the demand (when built; until then `out.pinned` keeps it out)."""
        if self._demand is not None:
            self._demand.started(j)


def _timeline(fabric: Fabric, running: list[SlurmJob], now: float) -> Timeline:
    """Running jobs' GPUs by expected end (Slurm's EndTime; one already past it frees now); a job
    without an EndTime never frees as far as the plan knows. Sorted once for every look ahead of the pass."""
    out = []
    for j in running:
        if j.end_time <= 0:
            continue
        alloc = [(fabric.node_index[n], list(ids)) for n, ids in j.gpu_ids.items() if n in fabric.node_index]
        out.append(Release(max(float(j.end_time), now), alloc))
    return in_time_order(out)


def _schedule(ps: Pass, gpu_jobs: list[tuple[SlurmJob, JobRequest]]) -> None:
    """Placer's scheduler live, in submit order: a job placed now within its leaf bound is pinned and
    released; a multi-node job that would go beyond it, still within its hold (`hold_s`, or a share of a
    long job's time limit, from submission; with hold_from_room, for a job with no room now, from when
    room comes),
    is pinned to the block within the bound that frees soonest, if Slurm's EndTimes say one frees in time
    (Slurm starts it there and backfills around it) and the wait would not leave idle room no pending job
    asks for (`hold_idles`); otherwise it takes what there is now, or waits held."""
    ix = index_for(ps.fabric)
    state = ps.report.state
    releases = _timeline(ps.fabric, ps.report.running, ps.now)
    keep_off = ps.snap.spoken_for(ps.fabric, ps.now)
    if ps.cfg.small_jobs_by_end:  # small jobs by end time (the default): Slurm's EndTimes per node
        state.set_ends(ps.free_at().copy(), ps.now)
    for j, job in gpu_jobs:
        if ps.cpus_pinned:  # jobs pinned earlier in the pass take CPUs too: two must both fit a MIXED node
            job = off_short_of_cpus(job, j.cpus_per_node, ps.cpus.with_taken(ps.cpus_pinned) if ps.cpus else None)
        if j.job_id in ps.movable:
            _move_if_sooner(ps, ix, state, releases, keep_off, j, job)
            continue
        p = place_one(ix, state, job, ps.cfg)
        later_job, later = _later_within_bound(ps, ix, state, releases, keep_off, j, job, p)
        if later is not None and later[0] > ps.now and not _idle_hold(ps, ix, state, later[0], j, job, p):
            at, q, projected = later
            if _reserve(ps, state, keep_off, j, later_job, later,
                        f"reserved: its block frees in about {at - ps.now:.0f} s"):
                ps.out.reserved.append((j.job_id, compress(q.nodes), at))
            continue
        if p.status != "placed":
            ps.out.waiting.append((j.job_id, _why_waiting(ps, ix, state, releases, job, p.reason)))
            continue
        if _pin(ps, j, job, p, state, "now"):
            ps.out.pinned.append((j.job_id, compress(p.nodes)))
            _take(ps, state, job, p)
            ps.started(j)


def _idle_hold(ps: Pass, ix: FabricIndex, state: ClusterState, at: float, j: SlurmJob, job: JobRequest,
               p: Placement) -> bool:
    """A job placed now beyond its bound whose hold until `at` would leave idle room that nothing pending
    asks for (placer/timeline.py hold_idles, room_for; its time limit as its run time): it starts now instead."""
    floor = ps.hold.idle_floor(j.time_limit_s)
    if p.status != "placed" or at - ps.now <= floor:
        return False
    room = room_for(ix, state, job, ps.cfg)
    others = ps.demand().asking(room, leave_out=j)
    return hold_idles(at - ps.now, int(state.free_gpus[room].sum()), others, j.gpus, floor)


def _later_within_bound(ps: Pass, ix: FabricIndex, state: ClusterState, releases: Timeline,
                        keep_off: np.ndarray, j: SlurmJob, job: JobRequest, p: Placement
                        ) -> tuple[JobRequest, Later | None]:
    """For a multi-node job placed beyond its leaf bound now (or not at all), still within its hold: the
    first block within the bound by Slurm's EndTimes, and when it frees (None: no such block in time),
    with the job as placed there (`_off_reservations_then`)."""
    placed = p.status == "placed"
    limit = ps.hold.limit(j.time_limit_s)
    if (j.submit_time + limit <= ps.now and (placed or not ps.hold.from_room)) or (placed and p.leaves <= 1):
        return job, None  # past its hold, or one leaf (within any bound): no need for the bound's eligibility pass
    bound, multi = static_leaf_bound(ix, state, job, ps.cfg)
    if not multi or bound is None or (placed and p.leaves <= bound):
        return job, None
    from_room = ps.hold.from_room and not placed
    room = first_room(ix, state, job, ps.cfg, releases, ps.now, keep_off, ps.free_at()) if from_room else ps.now
    until = hold_deadline(j.submit_time, limit, room, ps.now)
    return _off_reservations_then(ps, job, lambda jb: first_within_bound(ix, state, jb, ps.cfg, releases, ps.now,
                                                                         until, bound, keep_off, ps.free_at()))


def _off_reservations_then(ps: Pass, job: JobRequest, search: Callable[[JobRequest], Later | None]
                           ) -> tuple[JobRequest, Later | None]:
    """`search`'s first block for `job` that no Slurm reservation claims from when it frees to the job's
    time limit, with the job as placed there (`first_kept_off`)."""
    return first_kept_off(job, ps.now, search, off_reservations_at(ps.snap.reservations))


def _take(ps: Pass, state: ClusterState, job: JobRequest, p: Placement) -> None:
    """A job pinned to start now takes its GPUs in this pass's state, until its time limit."""
    apply(state, ps.fabric, p)
    if state.node_ends is not None:
        idx = [ps.fabric.node_index[n] for n in p.nodes]
        state.node_ends[idx] = np.maximum(state.node_ends[idx], ps.now + (job.time_limit_s or np.inf))


def _reserve(ps: Pass, state: ClusterState, keep_off: np.ndarray, j: SlurmJob, job: JobRequest,
             later: tuple[float, Placement, ClusterState], why: str) -> bool:
    """Pin `j` to a block that frees at `later`'s time; its nodes are spoken for in the rest of the pass."""
    _, q, projected = later
    if not _pin(ps, j, kept_off_ahead(state, job), q, projected, why):
        return False
    for name in q.nodes:  # no later job this pass takes its free part
        keep_off[ps.fabric.node_index[name]] = True
        state.set_usable(ps.fabric.node_index[name], False)
    return True


MOVE_MARGIN_S = 60.0  # another block must free at least this much sooner for a reservation to move


def _move_if_sooner(ps: Pass, ix: FabricIndex, state: ClusterState, releases: Timeline,
                    keep_off: np.ndarray, j: SlurmJob, job: JobRequest) -> None:
    """A waiting reservation moves to a block within its leaf bound that frees sooner than its own by
    Slurm's EndTimes, at once if one is free now (EndTimes are time limits: jobs end early, limits
    change). Otherwise it keeps its block; it is never held again, never moved beyond its bound, and its
    own block stays spoken for this pass."""
    bound, multi = static_leaf_bound(ix, state, job, ps.cfg)
    if not multi or bound is None:
        return
    own = frees_at(ps.node_ends(), j.required_nodes, ps.now)
    job, sooner = _off_reservations_then(ps, job, lambda jb: first_within_bound(
        ix, state, jb, ps.cfg, releases, ps.now, own - MOVE_MARGIN_S, bound, keep_off, ps.free_at()))
    if sooner is None:
        return
    at, q, _ = sooner
    old = compress(j.required_nodes)
    if at <= ps.now:
        if _pin(ps, j, job, q, state, f"moved from {old}: a block within its bound is free now"):
            ps.out.moved.append((j.job_id, old, compress(q.nodes), at))
            _take(ps, state, job, q)
    elif _reserve(ps, state, keep_off, j, job, sooner, f"moved from {old}: frees in about {at - ps.now:.0f} s"):
        ps.out.moved.append((j.job_id, old, compress(q.nodes), at))


WHY_PER_PASS = 20  # the full answer for this many waiting jobs a pass (each a look ahead: up to ~40 ms)


def _why_waiting(ps: Pass, ix: FabricIndex, state: ClusterState, releases: Timeline, job: JobRequest,
                 reason: str) -> str:
    """What `placer why` says of a job left waiting, for the log (the planner's reason past the first few)."""
    if len(ps.out.waiting) >= WHY_PER_PASS:
        return reason
    return str(why(ix, state, job, ps.cfg, ps.running(), ps.now, ps.hold, free_at=ps.free_at(),
                   releases=releases, off_at=off_reservations_at(ps.snap.reservations))["sentence"])


def _pin(ps: Pass, j: SlurmJob, job: JobRequest, p: Placement, on: ClusterState, why: str) -> bool:
    """Pin `j` to `p`'s nodes and release it; False (left held: the next pass tries again) on an error or
    when the one validator finds the placement wrong for the state it was made on (never applied)."""
    nodes = compress(p.nodes)
    bad = validate(ps.fabric, on, [job], [p], check_cost=False, reserved=spare_nodes(ps.fabric, ps.cfg),
                   avoid_multi=avoided_nodes(ps.fabric, ps.cfg))
    if bad:
        ps.out.errors.append(f"job {j.job_id}: placement refused by the validator: {'; '.join(bad)}")
        log.error("job %d: not pinned, the validator refused %s: %s", j.job_id, nodes, "; ".join(bad))
        return False
    try:
        ps.backend.pin(j.job_id, nodes, len(p.nodes))
        if j.held:  # a stranded pin being moved is pending already
            ps.backend.release(j.job_id)
    except BackendError as exc:
        ps.out.errors.append(f"job {j.job_id}: {exc}")
        return False
    log.info("job %d pinned to %s (%d leaf/leaves, bound %s) and released (%s)", j.job_id, nodes, p.leaves,
             p.leaf_lower_bound, why)
    for name in p.nodes:
        i = ps.fabric.node_index[name]
        ps.cpus_pinned[i] = ps.cpus_pinned.get(i, 0) + max(j.cpus_per_node, 1)
    return True


def apply_loop(fabric: Fabric, backend: Backend, cfg: PlannerConfig, max_hold_s: float, interval_s: float | None,
               stop: threading.Event, report: Callable[[ApplyReport], None],
               hold: HoldRule | None = None, state_file: Path | None = None) -> ApplyReport:
    """`placer apply`: one pass (interval None), or a pass every `interval_s` until `stop` is set; each
    pass's report goes to `report`. Returns the last pass's report. A watch outlives any failed pass (logged,
    in the report's errors, then a back-off of up to 10 intervals); a single pass lets its error out (exit 3).
    `state_file`: the hold clock is read from it before the first pass and saved after each pass that
    changed it (plugins/hold_clock_file.py), so a cron `--once` or a restarted watch keeps it; one apply
    at a time uses it (`one_apply`)."""
    if state_file:  # a file that is no state file (a wrong path) is refused before a lock is made beside it
        load_clock(state_file)
    with one_apply(state_file) if state_file else nullcontext():
        return _loop(fabric, backend, cfg, max_hold_s, interval_s, stop, report, hold, state_file)


def _loop(fabric: Fabric, backend: Backend, cfg: PlannerConfig, max_hold_s: float, interval_s: float | None,
          stop: threading.Event, report: Callable[[ApplyReport], None], hold: HoldRule | None,
          state_file: Path | None) -> ApplyReport:
    failures = 0
    clock = load_clock(state_file) if state_file else HoldClock()
    saved = clock_text(clock)
    while True:
        if interval_s is None:
            r = apply_once(fabric, backend, cfg, max_hold_s, hold=hold, clock=clock)
        else:
            try:
                r = apply_once(fabric, backend, cfg, max_hold_s, hold=hold, clock=clock)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the watch must not die on one bad answer from Slurm
                failures += 1
                if not isinstance(exc, BackendError):
                    log.exception("apply pass failed (a bug in placer, please report it)")
                r = ApplyReport(errors=[f"pass failed: {type(exc).__name__}: {exc}"])
        if state_file:
            saved = save_if_changed(state_file, clock, saved, r.errors)
        report(r)
        if interval_s is None or stop.wait(interval_s * min(2 ** failures, 10) if failures else interval_s):
            return r


def release_all(backend: Backend) -> list[int]:
    """Emergency: release every job the hook held, pinned or not."""
    done = []
    for j in steered_held(backend.snapshot()):
        backend.release(j.job_id)
        done.append(j.job_id)
    return done


def report_pass(socket_path: Path, timeout_s: float = 0.5) -> bool:
    """Tell `placer serve` that a pass ran (steer mode's daemon warns, and its metrics show, when apply
    stops). Best effort: no daemon there is not apply's error."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(socket_path))
            s.sendall(json.dumps({"v": 1, "op": "apply-pass"}).encode() + b"\n")
            s.recv(4096)
        return True
    except OSError as exc:
        log.debug("could not report the pass to placer serve at %s: %s", socket_path, exc)
        return False
