"""`placer serve`: the submit-time decision daemon that job_submit.lua asks.

Keeps the fabric and a ClusterState in memory, refreshed from Slurm every `refresh_s` and after each
decision. One JSON line in, one JSON line out, over a unix socket (owner root, group SlurmUser, mode
0660). Modes: `advise` (free now: ReqNodeList = the planned nodes; else --switches = the leaf lower
bound with a bounded wait) and `steer` (hold the job, priority 0, for `placer apply`).
Nodes handed out are reserved in the daemon's state until Slurm shows them in use (or `reservation_ttl_s`
passes), so two quick submits never get the same nodes.
"""
from __future__ import annotations

import grp
import json
import logging
import os
import socket
import socketserver
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from placer import JobRequest, PlannerConfig, place_one
from placer.bounds import empty_fabric_bounds
from placer.eligibility import eligibility
from placer.engine import avoided_nodes, spare_nodes
from placer.index import index_for
from placer.timeline import HoldRule
from placer.types import Placement
from placer.validate import validate
from placer.why import Running, not_startable_yet, why
from topology import BackendError, ClusterState, Fabric, Problem, RequestError
from topology.hostlists import compress
from topology.inputs import parse_json

from .backend import (
    STEER_TAG,
    Backend,
    HoldClock,
    PendingDemand,
    SlurmJob,
    SlurmReservation,
    hold_clock_start,
    ineligible,
)
from .cpus import CpuRoom
from .hold_clock_file import load_clock
from .refresh_worker import Picture, picture
from .requests import (
    hook_cpus_per_node,
    job_from_hook,
    off_reservations_at,
    partition_nodes,
    placeable_from_slurm,
    waits_at_submit,
)

log = logging.getLogger(__name__)
MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class ServeConfig:
    socket_path: Path = Path("/run/placer/placer.sock")
    socket_group: str = "slurm"
    mode: str = "advise"  # advise | steer
    partitions: tuple[str, ...] = ()  # empty: every partition
    gpu_only: bool = True
    opt_out: str = "placer:off"
    refresh_s: float = 5.0
    node_poll_s: float = 0.5  # drain watch: node states this often (0: off), so a drained node is never advised
    min_refresh_gap_s: float = 1.0  # refreshes after decisions are at least this far apart (bursts of submits)
    max_wait4switch_s: int = 300
    reservation_ttl_s: float = 30.0
    stale_request_s: float = 1.0  # a request the hook sent longer ago than this was given up on: not decided
    max_state_age_s: float = 60.0  # state older than this (refreshes failing): no advice, the job goes in as is
    max_hold_s: float = 600.0  # steer mode without `placer apply`: the daemon releases its own holds after this
    metrics_port: int | None = None  # Prometheus on 127.0.0.1:PORT/metrics
    planner: PlannerConfig = field(default_factory=lambda: PlannerConfig(solver="greedy", time_limit_s=0.005))
    hold: HoldRule = field(default_factory=HoldRule)  # the site's hold settings, for `why` answers
    # `placer apply`'s state file, read (never written) while the hook holds jobs: after a restart the daemon
    # counts a chained job's hold from when apply saw its dependency met, not from submission
    apply_state_file: Path | None = None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("placer_decisions", "Submit-time decisions by action", ["action"],
                                 registry=self.registry)
        self.latency = Histogram("placer_decision_seconds", "Time to decide one submit", registry=self.registry,
                                 buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5))
        self.fail_open = Counter("placer_fail_open", "Submits that went in unchanged because placer did not "
                                 "answer in time (reported by job_submit.lua)", registry=self.registry)
        self.bad_requests = Counter("placer_bad_requests", "Requests that were not valid JSON", registry=self.registry)
        self.refused = Counter("placer_validator_refusals", "Placements the one validator refused (the job went "
                               "in unchanged; the log says why)", registry=self.registry)
        self.refresh_errors = Counter("placer_refresh_errors", "Failed refreshes from Slurm", registry=self.registry)
        self.state_age = Gauge("placer_state_age_seconds", "Age of the Slurm state the daemon decides on",
                               registry=self.registry)
        self.held = Gauge("placer_held_jobs", "Jobs the hook holds for `placer apply` now",
                          registry=self.registry)
        self.oldest_hold = Gauge("placer_oldest_hold_seconds", "How long the longest-held of them has waited "
                                 "(grows without bound when `placer apply` is not running)", registry=self.registry)
        self.hold_timeouts = Counter("placer_hold_timeouts", "Held jobs the daemon released unpinned after "
                                     "max_hold_s (no `placer apply` pinned them in time)", registry=self.registry)
        self.node_poll_errors = Counter("placer_node_poll_errors", "Failed node-state polls (the drain watch)",
                                        registry=self.registry)
        self.node_state_age = Gauge("placer_node_state_age_seconds", "Age of the node states the daemon "
                                    "decides on (the drain watch's last poll, else the last refresh)",
                                    registry=self.registry)
        self.apply_age = Gauge("placer_last_apply_age_seconds", "Seconds since `placer apply` last reported a "
                               "pass (-1: never since the daemon started)", registry=self.registry)
        self.apply_state_unread = Gauge("placer_apply_state_unread", "1 when `placer apply`'s state file "
                                        "could not be read at the last refresh (holds then count from what "
                                        "the daemon saw itself; the log says why)", registry=self.registry)
        self.mismatch = Gauge("placer_inventory_mismatch_nodes", "Inventory nodes Slurm does not know or "
                              "describes otherwise (GPU count, model, features); above 0 the daemon gives no "
                              "advice", registry=self.registry)


@dataclass
class Reservation:
    node: int
    gpus: list[int]
    expires: float
    created: float = 0.0  # time.monotonic() of the advice
    cpus: int = 0  # the CPUs the advised job needs there, at least (plugins/cpus.py)


class Daemon:
    def __init__(self, fabric: Fabric, backend: Backend, cfg: ServeConfig) -> None:
        self.fabric, self.backend, self.cfg = fabric, backend, cfg
        self.ix = index_for(fabric)
        self.metrics = Metrics()
        self.lock = threading.Lock()
        self.state = ClusterState(fabric)
        self.state_time = 0.0
        self.mismatch = ""  # what the inventory gets wrong about the cluster ("": nothing)
        self.partitions: dict[str, tuple[str, ...]] | None = None  # partition -> nodes, as Slurm lists them
        self.slurm_reservations: tuple[SlurmReservation, ...] = ()  # Slurm's own (not the advice kept below)
        self.cpu_room: CpuRoom | None = None  # nodes with too few CPUs left for some jobs (plugins/cpus.py)
        self.running: list[Running] = []  # from the last refresh, for `why`
        self.pending: dict[int, SlurmJob] = {}
        # the drain watch: nodes its last poll found unusable, and when that poll was asked
        self.polled_off: set[int] = set()
        self.polled_at = 0.0  # time.monotonic()
        self.node_state_time = 0.0  # time.time() of the node states decisions use
        self.last_apply: float | None = None  # time.time() of `placer apply`'s last reported pass
        self.hold_clock = HoldClock()  # when held jobs that waited for a dependency found it met
        self.apply_state_problem = ""  # why apply's state file could not be read at the last look ("": read)
        self.metrics.apply_age.set_function(lambda: time.time() - self.last_apply if self.last_apply else -1.0)
        # how a refresh reads Slurm: here, or in a worker process (`placer serve` itself: refresh_worker.py)
        self.take_picture: Callable[[], Picture] = lambda: picture(self.fabric, self.backend.snapshot())
        self.reservations: list[Reservation] = []
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        self.wake = threading.Event()
        self.stop = threading.Event()

    # -- state -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        asked = time.monotonic()
        pic = self.take_picture()
        state = pic.state(self.state)
        self._watch_holds(pic.steered)
        for w in pic.warnings:
            log.warning("%s", w)
        mismatch = pic.mismatch_text()
        if mismatch and mismatch != self.mismatch:
            log.error("the inventory does not match Slurm (%s): no advice until it does", mismatch)
        elif self.mismatch and not mismatch:
            log.warning("the inventory matches Slurm again: advising")
        self.metrics.mismatch.set(sum(len(v) for v in pic.mismatch.values()))
        now = time.monotonic()
        with self.lock:
            kept = []
            for r in self.reservations:
                # advice older than this snapshot is in Slurm's view now: pending with its nodes (held
                # above), running (allocated), or cancelled (free again): the reservation has done its job
                if r.expires < now or r.created < asked:
                    continue
                free = set(state.free_gpu_ids(r.node))
                if not set(r.gpus) <= free:
                    continue  # Slurm now shows these GPUs in use: the reservation has done its job
                state.allocate(r.node, r.gpus)
                kept.append(r)
            self.reservations = kept
            if self.polled_at > asked:  # the drain watch saw newer node states than this snapshot
                for i in self.polled_off:
                    state.set_usable(i, False)
            self.state = state
            self.state_time = time.time()
            self.node_state_time = max(self.node_state_time, self.state_time - (now - asked))
            self.mismatch = mismatch
            self.partitions, self.slurm_reservations, self.cpu_room = pic.partitions, pic.reservations, pic.cpu_room
            self.running, self.pending = pic.running, pic.pending

    def poll_nodes(self) -> None:
        """The drain watch: node states only (cheap), so a node drained or downed a moment ago is off at
        once rather than at the next full refresh. It only takes nodes out; the refresh brings them back."""
        asked_mono, asked = time.monotonic(), time.time()
        nodes = self.backend.node_states()
        off = {i for n in nodes if n.state != "up" and (i := self.fabric.node_index.get(n.name)) is not None}
        with self.lock:
            for i in off:
                self.state.set_usable(i, False)
            self.polled_off, self.polled_at = off, asked_mono
            self.node_state_time = max(self.node_state_time, asked)

    def node_poller(self) -> None:
        failures = 0
        # after failures, wait longer (doubling, at most 30 s) so a Slurm in trouble is not asked twice a second
        while not self.stop.wait(min(self.cfg.node_poll_s * 2 ** failures, max(self.cfg.node_poll_s, 30.0))):
            try:
                self.poll_nodes()
                failures = 0
            except Exception as exc:  # the watch must outlive any one bad answer; refresh still runs
                failures += 1
                self.metrics.node_poll_errors.inc()
                log.error("node-state poll failed: %s: %s", type(exc).__name__, exc)

    def _watch_holds(self, steered: list[tuple[int, int, bool]]) -> None:
        """Steer mode must be safe without `placer apply`: count our holds, release those past max_hold_s
        (a job waiting for its dependency or begin time is not counted: Slurm could not start it anyway)."""
        now = time.time()
        if steered:
            self._learn_apply_clock()
        self.hold_clock.keep_only({s[0] for s in steered})
        clocks = [(job_id, self.hold_clock.since(job_id, since, waiting, now)) for job_id, since, waiting in steered]
        held = [c for c, (_, _, waiting) in zip(clocks, steered, strict=True) if not waiting]
        if held and self.cfg.mode == "steer" and (self.last_apply is None or now - self.last_apply > 60):
            log.warning("%d job(s) held for `placer apply`, which %s", len(held),
                        "has not reported since the daemon started" if self.last_apply is None else
                        f"last reported {now - self.last_apply:.0f} s ago")
        self.metrics.held.set(len(held))
        self.metrics.oldest_hold.set(max((now - submitted for _, submitted in held), default=0.0))
        for job_id, submitted in held:
            if now - submitted <= self.cfg.max_hold_s:
                continue
            try:
                self.backend.release(job_id)
            except BackendError as exc:
                log.error("could not release job %d, held past max_hold_s: %s", job_id, exc)
                continue
            self.metrics.hold_timeouts.inc()
            log.warning("job %d released unpinned: held %.0f s, longer than max_hold_s %g (is `placer apply` "
                        "running?)", job_id, now - submitted, self.cfg.max_hold_s)

    def _learn_apply_clock(self) -> None:
        """What `placer apply` saw of chained jobs, from its state file (none yet: nothing to learn). One it
        cannot read is logged when the reason changes and shown by placer_apply_state_unread; the daemon then
        counts from what it saw itself, as before apply kept a file."""
        path = self.cfg.apply_state_file
        if path is None:
            return
        try:
            self.hold_clock.learn(load_clock(path))
            problem = ""
        except RequestError as exc:
            problem = exc.render()
        if problem and problem != self.apply_state_problem:
            log.warning("apply's state file not read; held jobs' holds count from what this daemon saw: %s", problem)
        self.apply_state_problem = problem
        self.metrics.apply_state_unread.set(1 if problem else 0)

    def state_summary(self) -> dict[str, Any]:
        """What the daemon decides on: when it last read Slurm, GPUs in use, nodes it will not use."""
        with self.lock:
            st = self.state
            unusable = [self.fabric.node_names[i] for i in np.nonzero(~st.usable)[0]]
            return {"state_time": self.state_time, "node_state_time": self.node_state_time,
                    "gpus_in_use": int(self.fabric.total_gpus - st.free_gpus.sum()), "unusable_nodes": unusable,
                    "last_apply": self.last_apply}

    def refresher(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self.refresh()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any answer Slurm gives
                failures += 1
                self.metrics.refresh_errors.inc()
                if isinstance(exc, BackendError):
                    log.error("refresh from Slurm failed: %s", exc)
                else:
                    log.exception("refresh failed (a bug in placer, please report it)")
                # back off (1, 2, 4 ... 60 s) so a Slurm in trouble is not asked harder; decisions meanwhile
                # fail open once the state is older than max_state_age_s
                if self.stop.wait(min(2.0 ** (failures - 1), 60.0)):
                    return
            # a burst of submits must not turn into a burst of sinfo/squeue calls on slurmctld
            self.stop.wait(min(self.cfg.min_refresh_gap_s, self.cfg.refresh_s))
            self.wake.wait(max(self.cfg.refresh_s - self.cfg.min_refresh_gap_s, 0))
            self.wake.clear()

    # -- decisions -------------------------------------------------------------------------------
    def job_from_request(self, req: dict[str, Any]) -> tuple[JobRequest | None, str]:
        """The daemon's policy (opt-out, managed partitions, GPU jobs only) around the one translator."""
        comment = str(req.get("comment") or "")
        if self.cfg.opt_out and self.cfg.opt_out in comment:
            return None, f"opted out ({self.cfg.opt_out} in comment)"
        partition = req.get("partition")
        if self.cfg.partitions and (partition or "") not in self.cfg.partitions:
            return None, f"partition {partition or '(default)'} is not managed by placer"
        nodes, why = partition_nodes(self.partitions, partition if isinstance(partition, str) else None)
        if nodes is None:
            return None, why
        job, why = job_from_hook(req, nodes, self.slurm_reservations, time.time(), self._cpus_left())
        if job is None and why == "no GPUs requested" and not self.cfg.gpu_only:
            return None, "CPU-only jobs are left to Slurm"
        if job is not None and (unhonoured := job.not_yet_honoured()):
            return None, f"{unhonoured} is left to Slurm (placer does not honour it yet)"
        return job, why

    def _cpus_left(self) -> CpuRoom | None:
        """The last refresh's CPU room with the CPUs of advice given since taken (two jobs advised to one
        MIXED node before Slurm shows the first must both fit)."""
        if self.cpu_room is None:
            return None
        since: dict[int, int] = {}
        with self.lock:
            for r in self.reservations:
                if r.cpus:
                    since[r.node] = since.get(r.node, 0) + r.cpus
        return self.cpu_room.with_taken(since)

    def why(self, job_id: Any) -> dict[str, Any]:
        """`placer why` through the daemon (the hook's socket): the same answer, from the last refresh."""
        j = self.pending.get(job_id) if isinstance(job_id, int) and not isinstance(job_id, bool) else None
        if j is None:
            return {"action": "none", "reason": f"no pending job {job_id!r} in the last refresh"}
        now = time.time()
        # the hold counted as apply counts it: from the begin time, or from when a dependency was seen met
        j = replace(j, submit_time=hold_clock_start(j, self.hold_clock, now))
        job, left = placeable_from_slurm(j, self.partitions, own_pin=STEER_TAG in j.admin_comment,
                                         reservations=self.slurm_reservations, now=now, cpu_room=self.cpu_room)
        if job is None:
            return {"action": "none", "reason": f"left to Slurm unchanged: {left}"}
        with self.lock:
            state = self.state.copy()
        pinned = list(j.required_nodes) if STEER_TAG in j.admin_comment and not j.held else []
        answer = not_startable_yet(why(
            self.ix, state, job, self.cfg.planner, self.running, now, self.cfg.hold, pinned,
            queued_others=PendingDemand.of((p for p in self.pending.values() if p.job_id != job_id), self.fabric,
                                           self.partitions, now).asking,
            off_at=off_reservations_at(self.slurm_reservations)), ineligible(j, now))
        return {"action": "none", "why": answer}

    def decide(self, req: Any) -> dict[str, Any]:
        return self.decide_held(req)[0]

    def decide_held(self, req: Any) -> tuple[dict[str, Any], list[Reservation]]:
        """The answer, and the reservations it made (undone by `undo` when the answer cannot be delivered)."""
        t0 = time.perf_counter()
        held: list[Reservation] = []
        if not isinstance(req, dict) or req.get("v") != 1:
            self.metrics.bad_requests.inc()
            return {"action": "none", "reason": "bad request: expected a version-1 object"}, held
        if req.get("op") == "decisions":
            return {"action": "none", "decisions": list(self.recent)}, held
        if req.get("op") == "state":
            return {"action": "none", **self.state_summary()}, held
        if req.get("op") == "why":
            return self.why(req.get("job")), held
        if req.get("op") == "apply-pass":  # `placer apply` says it ran (the socket is root/SlurmUser only)
            self.last_apply = time.time()
            return {"action": "none"}, held
        fail_open = req.get("fail_open")
        if isinstance(fail_open, int) and fail_open > 0:
            self.metrics.fail_open.inc(fail_open)
        job, why = self.job_from_request(req)
        if job is not None and self.mismatch:
            job, why = None, f"the inventory does not match Slurm ({self.mismatch}): no advice"
        age = time.time() - self.state_time
        if job is not None and age > self.cfg.max_state_age_s:  # never advise from what Slurm said long ago
            job, why = None, (f"the daemon's view of Slurm is {age:.0f} s old (max_state_age_s "
                              f"{self.cfg.max_state_age_s:g}): no advice until a refresh succeeds")
        sent = req.get("sent")
        if job is not None and isinstance(sent, (int, float)) and time.time() - sent > self.cfg.stale_request_s:
            # queued while the daemon was stalled: the hook failed open long ago, and nodes reserved for
            # this job would be held for a job that went in unchanged
            job, why = None, f"stale request (sent {time.time() - sent:.1f} s ago): the hook has given up on it"
        if job is not None and self.cfg.mode != "steer" and (waits := waits_at_submit(req, time.time())):
            # nodes advised now would bind a job that starts later (maybe hours) to nodes busy by then;
            # steer mode holds it instead, and `placer apply` places it once Slurm could start it
            job, why = None, f"it waits for {waits}: no advice (nodes chosen now would be stale when it starts)"
        if job is None:
            answer: dict[str, Any] = {"action": "none", "reason": why}
        elif self.cfg.mode == "steer" and req.get("interactive") is not True:
            answer = {"action": "steer", "reason": f"held for `placer apply` ({job.gpus} GPUs)"}
        else:  # (salloc/srun in steer mode too: held, its user would wait for apply's pass, and --immediate fail)
            answer, held = self._advise(job, hook_cpus_per_node(req))
        elapsed = time.perf_counter() - t0
        self.metrics.decisions.labels(answer["action"]).inc()
        self.metrics.latency.observe(elapsed)
        self.metrics.state_age.set(time.time() - self.state_time if self.state_time else 0)
        self.metrics.node_state_age.set(time.time() - self.node_state_time if self.node_state_time else 0)
        record = {"name": req.get("name"), "user": req.get("user"), "ms": round(elapsed * 1e3, 3), **answer}
        self.recent.append(record)
        log.info("decision name=%s user=%s action=%s %s ms=%.2f reason=%s", req.get("name"), req.get("user"),
                 answer["action"], " ".join(f"{k}={answer[k]}" for k in ("req_nodes", "req_switch") if k in answer),
                 elapsed * 1e3, answer.get("reason", ""))
        if answer["action"] != "none":
            self.wake.set()  # refresh soon after each decision
        return answer, held

    def undo(self, held: list[Reservation]) -> None:
        """The answer never reached the hook (it gave up and closed): its nodes are free again."""
        with self.lock:
            for r in held:
                if r in self.reservations:
                    self.reservations.remove(r)
                    self.state.release(r.node, r.gpus)

    def _advise(self, job: JobRequest, cpus: int = 0) -> tuple[dict[str, Any], list[Reservation]]:
        """Advice for `job` (`cpus`: what it needs on each node, kept on the advised nodes until Slurm shows it)."""
        with self.lock:
            p = place_one(self.ix, self.state, job, self.cfg.planner)
            bad = self._refused(job, p)
            if bad:  # an answer we cannot check is not given: the job goes in as the user wrote it
                return {"action": "none", "reason": f"placement refused by the validator: {bad[0]}"}, []
            if p.status == "placed":
                expires = time.monotonic() + self.cfg.reservation_ttl_s
                items = [(self.fabric.node_index[name], list(ids)) for name, ids in p.gpu_ids.items()]
                self.state.allocate_many(items)
                held = [Reservation(n, ids, expires, time.monotonic(), cpus) for n, ids in items]
                self.reservations.extend(held)
                return {"action": "advise", "req_nodes": compress(p.nodes), "min_nodes": len(p.nodes),
                        "leaves": p.leaves, "leaf_lower_bound": p.leaf_lower_bound,
                        "reason": f"nodes {compress(p.nodes)}: {p.leaves} leaf(s), bound {p.leaf_lower_bound}"}, held
            if p.status == "pending":
                el = eligibility(self.ix, self.state, job)
                k = empty_fabric_bounds(self.ix, el.static, el.nodes_needed).leaf or 1
                return {"action": "advise", "req_switch": int(k), "wait4switch": self.cfg.max_wait4switch_s,
                        "reason": f"no room now; asks Slurm for {k} leaf switch(es) within "
                                  f"{self.cfg.max_wait4switch_s} s"}, []
            return {"action": "none", "reason": p.reason}, []


    def _refused(self, job: JobRequest, p: Placement) -> list[str]:
        """What the one validator finds wrong with the advice `p` on the state it was made on (nodes for
        a placed job; for a pending one, that it really does not fit now), counted and logged."""
        if p.status == "unplaceable":  # no advice either way
            return []
        bad = validate(self.fabric, self.state, [job], [p], check_cost=False,
                       reserved=spare_nodes(self.fabric, self.cfg.planner),
                       avoid_multi=avoided_nodes(self.fabric, self.cfg.planner))
        if bad:
            self.metrics.refused.inc()
            log.error("job %s: no advice, the validator refused the placement: %s", job.job_id, "; ".join(bad))
        return bad


class _Handler(socketserver.StreamRequestHandler):
    # job_submit.lua keeps its connection open between submits: one thread per connection, answering
    # line after line; a connection idle this long is closed (the hook then opens a new one)
    timeout = 600.0

    def handle(self) -> None:
        daemon: Daemon = self.server.daemon  # type: ignore[attr-defined]
        while not daemon.stop.is_set():
            try:
                line = self.rfile.readline(MAX_LINE)
            except OSError:
                return
            if not line:
                return
            whole = line.endswith(b"\n")
            held: list[Reservation] = []
            if whole:
                answer, held = _answer(daemon, line)
            else:  # longer than MAX_LINE: answered at once, its rest then skipped (never read as a request)
                daemon.metrics.bad_requests.inc()
                answer = {"action": "none", "reason": f"bad request: over {MAX_LINE} bytes"}
            try:
                self.wfile.write((json.dumps(answer) + "\n").encode())
            except OSError:
                daemon.undo(held)  # the hook gave up waiting (it failed open) and closed its end
                return
            if not whole and not self._skip_line():
                return

    def _skip_line(self, limit: int = 64 * MAX_LINE) -> bool:
        """Read to the end of an over-long line (True), or give up after `limit` bytes (False: the connection
        is then closed; the peer may see it reset)."""
        seen = 0
        while seen < limit:
            try:
                part = self.rfile.readline(MAX_LINE)
            except OSError:
                return False
            if not part:
                return False
            if part.endswith(b"\n"):
                return True
            seen += len(part)
        return False


def _answer(daemon: Daemon, line: bytes) -> tuple[dict[str, Any], list[Reservation]]:
    problems: list[Problem] = []
    # bounded: deep nesting, 5,000-digit numbers, NaN, duplicate keys. The hook's cjson passes a job name or
    # comment as the user's bytes: one not UTF-8 reads as U+FFFD (never written back), and the job is decided
    req = parse_json(line.decode("utf-8", "replace"), problems)
    if problems:
        daemon.metrics.bad_requests.inc()
        p = problems[0]
        return {"action": "none", "reason": f"bad request: {p.path + ': ' if p.path else ''}{p.message}"[:300]}, []
    try:
        return daemon.decide_held(req)
    except Exception as exc:  # a bug must not take the daemon down; the job goes in unchanged
        log.exception("decision failed")
        return {"action": "none", "reason": f"internal error: {type(exc).__name__}"}, []


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    # a burst of submits must find room in the listen queue (the default of 5 filled under 20 parallel
    # submitters, and a full queue makes the hook wait out its budget)
    request_queue_size = 1024


def _prepare_socket(path: Path, group: str) -> int | None:
    """Make the socket's own directory (reachable by SlurmUser through the group) when it is not there, and
    clear a stale socket; returns the group id. A directory that exists keeps its owner and mode, and only a
    socket is ever removed: `--socket /tmp/p.sock` as root made /tmp 0750 root:slurm, and a socket path
    naming a file (`/etc/slurm/slurm.conf`) deleted it (both before 2026-12-07)."""
    gid: int | None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        log.warning("group %s does not exist: the socket keeps the daemon's group", group)
        gid = None
    if not path.parent.parent.is_dir():  # create the socket's own directory at most, never a tree of them
        raise RequestError(f"socket {path}: {path.parent.parent} does not exist (placer creates only the "
                           f"socket's own directory)")
    if not path.parent.exists():
        path.parent.mkdir()
        if gid is not None and os.geteuid() == 0:
            os.chown(path.parent, 0, gid)
            path.parent.chmod(0o750)
    else:
        st = path.parent.stat()
        if gid is not None and not (st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010)):
            log.warning("%s: group %s cannot enter it (mode %o, group id %d): slurmctld may not reach the socket "
                        "and every job then goes in unchanged (`placer hook install --dry-run` checks)",
                        path.parent, group, st.st_mode & 0o777, st.st_gid)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise RequestError(f"socket {path}: a file that is not a socket is there; placer removes only a "
                               "stale socket of its own (give another --socket)")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: nobody listens
        else:
            raise BackendError(f"another daemon already listens on {path}")
        finally:
            probe.close()
    return gid


def _check_port_free(port: int) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as the metrics server itself binds: a port left in TIME_WAIT by an earlier daemon is free to use
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as exc:
        raise RequestError(f"--metrics-port {port}: 127.0.0.1:{port} cannot be used ({exc.strerror})") from None
    finally:
        probe.close()


def serve(daemon: Daemon, ready: threading.Event | None = None) -> None:
    """Run until `daemon.stop` is set: first refresh, socket, metrics, refresher thread."""
    cfg = daemon.cfg
    # slurmctld waits for each answer holding its job lock, so every submit queued behind it waits too: a
    # decision thread must get the GIL within ~0.5 ms of a refresh's parsing, not Python's default 5 ms
    sys.setswitchinterval(0.0005)
    if cfg.metrics_port is not None:  # a busy port is the admin's setting to fix, found before anything starts
        _check_port_free(cfg.metrics_port)
    daemon.refresh()
    gid = _prepare_socket(cfg.socket_path, cfg.socket_group)
    server = _Server(str(cfg.socket_path), _Handler)
    server.daemon = daemon  # type: ignore[attr-defined]
    if gid is not None and os.geteuid() == 0:
        os.chown(cfg.socket_path, 0, gid)
    cfg.socket_path.chmod(0o660)
    if cfg.metrics_port is not None:
        try:
            start_http_server(cfg.metrics_port, addr="127.0.0.1", registry=daemon.metrics.registry)
        except OSError as exc:  # taken between the check and now
            server.server_close()
            raise RequestError(f"--metrics-port {cfg.metrics_port}: {exc.strerror}") from None
    threading.Thread(target=daemon.refresher, name="refresher", daemon=True).start()
    if cfg.node_poll_s > 0:
        threading.Thread(target=daemon.node_poller, name="node-poller", daemon=True).start()
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    worker.start()
    log.info("placer serve: %s mode on %s, %d nodes, refresh every %g s%s", cfg.mode, cfg.socket_path,
             daemon.fabric.n_nodes, cfg.refresh_s,
             f", metrics on 127.0.0.1:{cfg.metrics_port}" if cfg.metrics_port is not None else "")
    if ready is not None:
        ready.set()
    try:
        # with a timeout: a signal that the kernel hands to another thread (SIGTERM while busy) runs its
        # Python handler only when the main thread next wakes; an untimed wait never does (seen: a
        # `placer serve` that ignored SIGTERM after a burst of submits)
        while not daemon.stop.wait(0.2):
            pass
    finally:
        server.shutdown()
        server.server_close()
        daemon.wake.set()
        try:
            cfg.socket_path.unlink()
        except FileNotFoundError:
            pass


def with_overrides(cfg: ServeConfig, **kw: Any) -> ServeConfig:
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})
