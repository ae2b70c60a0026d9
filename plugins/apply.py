"""`placer apply`: pin held jobs to planned nodes, then release them.

Every run starts from Slurm's state, so it is idempotent and a crash anywhere loses nothing: a job is
only ever pinned (ReqNodeList, NumNodes) and released, never cancelled; one pinned but not yet
released is simply planned and pinned again. Only jobs the hook held are touched (tag `placer:steer`
in AdminComment, which users cannot write, and still the hook's own hold: JobHeldUser; an admin's
hold is never released). A job held longer than `max_hold_s` is released unpinned, and the log says
so. Pending jobs with required nodes keep them in the plan's state, so two runs never double-book.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from placer import JobRequest, PlannerConfig, plan
from topology import BackendError, Fabric
from topology.hostlists import compress

from .backend import Backend, SlurmJob, SlurmSnapshot, StateReport, hold_for_pending, to_cluster_state
from .requests import placeable_from_slurm

log = logging.getLogger(__name__)


@dataclass
class ApplyReport:
    pinned: list[tuple[int, str]] = field(default_factory=list)
    released_unpinned: list[tuple[int, str]] = field(default_factory=list)
    waiting: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def steered_held(snap: SlurmSnapshot) -> list[SlurmJob]:
    return sorted((j for j in snap.jobs if j.steered), key=lambda j: (j.submit_time, j.job_id))


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
               now: float | None = None) -> ApplyReport:
    now = time.time() if now is None else now
    out = ApplyReport()
    snap = backend.snapshot()
    report = to_cluster_state(fabric, snap)
    if report.mismatch:
        return _release_on_mismatch(backend, snap, report, out)
    hold_for_pending(fabric, report.state, snap)
    todo: list[SlurmJob] = []
    for j in steered_held(snap):
        if j.gpus <= 0:
            todo.append(j)  # no GPUs: nothing to place; release as is below
        elif now - j.submit_time > max_hold_s:
            try:
                backend.release(j.job_id)
                out.released_unpinned.append((j.job_id, f"held {now - j.submit_time:.0f} s > {max_hold_s:g} s"))
                log.warning("job %d released unpinned: held %.0f s, longer than --max-hold-s %g", j.job_id,
                            now - j.submit_time, max_hold_s)
            except BackendError as exc:
                out.errors.append(str(exc))
        else:
            todo.append(j)
    gpu_jobs: list[tuple[SlurmJob, JobRequest]] = []
    partitions = snap.partition_nodes()
    for j in todo:
        # the hook steers only jobs without -w, so required nodes on a held job are our own earlier pin
        job, why = placeable_from_slurm(j, partitions, own_pin=True)
        if job is not None:
            gpu_jobs.append((j, job))
            continue
        try:
            backend.release(j.job_id)
            out.released_unpinned.append((j.job_id, why))
        except BackendError as exc:
            out.errors.append(f"job {j.job_id}: {exc}")
    if not gpu_jobs:
        return out
    result = plan(fabric, report.state, [job for _, job in gpu_jobs], cfg)
    for (j, _), p in zip(gpu_jobs, result.placements):
        if p.status != "placed":
            out.waiting.append((j.job_id, p.reason))
            continue
        nodes = compress(p.nodes)
        try:
            backend.pin(j.job_id, nodes, len(p.nodes))
            backend.release(j.job_id)
        except BackendError as exc:  # stays held (or pinned and held): the next run tries again
            out.errors.append(f"job {j.job_id}: {exc}")
            continue
        out.pinned.append((j.job_id, nodes))
        log.info("job %d pinned to %s (%d leaf/leaves, bound %s) and released", j.job_id, nodes, p.leaves,
                 p.leaf_lower_bound)
    return out


def apply_loop(fabric: Fabric, backend: Backend, cfg: PlannerConfig, max_hold_s: float, interval_s: float | None,
               stop: threading.Event, report: Callable[[ApplyReport], None]) -> ApplyReport:
    """`placer apply`: one pass (interval None), or a pass every `interval_s` until `stop` is set; each
    pass's report goes to `report`. Returns the last pass's report. A watch outlives any failed pass (logged,
    in the report's errors, then a back-off of up to 10 intervals); a single pass lets its error out (exit 3)."""
    failures = 0
    while True:
        if interval_s is None:
            r = apply_once(fabric, backend, cfg, max_hold_s)
        else:
            try:
                r = apply_once(fabric, backend, cfg, max_hold_s)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the watch must not die on one bad answer from Slurm
                failures += 1
                if not isinstance(exc, BackendError):
                    log.exception("apply pass failed (a bug in placer, please report it)")
                r = ApplyReport(errors=[f"pass failed: {type(exc).__name__}: {exc}"])
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
