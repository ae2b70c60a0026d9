"""The daemon's picture of Slurm, and a process of its own to take it in.

Reading Slurm is parsing JSON: `squeue --json` with 10,000 pending jobs is tens of megabytes, and
`json.loads` holds Python's interpreter lock until it is done. In `placer serve` that stalls every
decision, and slurmctld waits for each submit's answer holding its job lock, so every queued submit
stalls with it (seen: decisions of 25 ms and hook time-outs while 800 held jobs were re-read). So
`ProcessRefresher` takes the picture in a worker process and hands back only what the daemon keeps:
the node arrays of a ClusterState, the partitions, the mismatch, and the jobs the hook holds.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from placer.why import Running
from topology import BackendError, ClusterState, Fabric

from .backend import (
    Backend,
    SlurmJob,
    SlurmReservation,
    SlurmSnapshot,
    held_since,
    hold_for_pending,
    ineligible,
    mismatch_text,
    running_of,
    to_cluster_state,
)
from .cpus import CpuRoom, cpu_room


@dataclass
class Picture:
    """What the daemon keeps of one snapshot (picklable, mostly arrays)."""
    free_mask: np.ndarray
    free_gpus: np.ndarray
    usable: np.ndarray
    warnings: list[str] = field(default_factory=list)
    mismatch: dict[str, list[str]] = field(default_factory=dict)
    partitions: dict[str, tuple[str, ...]] | None = None
    # the jobs the hook holds: (job id, held since as Slurm shows it, waiting for a dependency or begin time)
    steered: list[tuple[int, int, bool]] = field(default_factory=list)
    running: list[Running] = field(default_factory=list)  # with Slurm's EndTimes: for `why`
    pending: dict[int, SlurmJob] = field(default_factory=dict)  # job id -> pending job: for `why`
    reservations: tuple[SlurmReservation, ...] = ()  # Slurm's: advice keeps off them
    cpu_room: CpuRoom | None = None  # nodes with too few CPUs left for some jobs: advice keeps off them

    def state(self, like: ClusterState) -> ClusterState:
        """A ClusterState of this picture, shaped like `like` (its fabric's tables are shared, not rebuilt)."""
        st = like.copy()
        st.free_mask[:] = self.free_mask
        st.free_gpus[:] = self.free_gpus
        st.usable[:] = self.usable
        st.recompute()
        return st

    def mismatch_text(self) -> str:
        return mismatch_text(self.mismatch)


def picture(fabric: Fabric, snap: SlurmSnapshot) -> Picture:
    """One snapshot as the daemon keeps it: running jobs' GPUs taken, down/drained nodes off, and the
    nodes of pending jobs with required nodes (advised, released, or -w) spoken for."""
    report = to_cluster_state(fabric, snap)
    st = report.state
    now = time.time()
    hold_for_pending(fabric, st, snap, now)
    return Picture(st.free_mask.copy(), st.free_gpus.copy(), st.usable.copy(), report.warnings, report.mismatch,
                   snap.partition_nodes(), [(j.job_id, held_since(j), bool(ineligible(j, now))) for j in snap.jobs
                                            if j.steered],
                   running_of(fabric, report.running), {j.job_id: j for j in snap.jobs if j.state == "PENDING"},
                   snap.reservations, cpu_room(fabric, snap.nodes, snap.jobs, now))


_WORKER: dict[str, Any] = {}


def _start(load: Callable[[str], Fabric], inventory: str, backend: Callable[[], Backend]) -> None:
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    _WORKER["fabric"], _WORKER["backend"] = load(inventory), backend()


def _exit_with(parent: int, every_s: float = 1.0) -> None:
    """End the worker when the daemon is gone. A SIGKILLed daemon closes nothing the worker waits on (the
    worker holds its own copy of the task queue's pipe), so it and multiprocessing's resource tracker would
    stay forever, orphaned (seen after a lab's daemon was killed)."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(0)


def _take() -> Picture:
    return picture(_WORKER["fabric"], _WORKER["backend"].snapshot())


class ProcessRefresher:
    """`picture(fabric, backend.snapshot())` in a worker process (started once, with the same inventory and
    backend as the daemon). A worker that dies is replaced at the next call; its errors come back as
    BackendError. `load` and `backend` must be importable functions (the worker is spawned, not forked:
    the daemon has threads)."""

    def __init__(self, load: Callable[[str], Fabric], inventory: str, backend: Callable[[], Backend],
                 timeout_s: float = 120.0) -> None:
        self.args, self.timeout_s = (load, inventory, backend), timeout_s
        self.pool = self._pool()
        self.closed = False

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                                   initargs=self.args)

    def __call__(self) -> Picture:
        if self.closed:
            raise BackendError("the refresh worker was stopped (placer serve is stopping)")
        try:
            return self.pool.submit(_take).result(timeout=self.timeout_s)
        except BrokenProcessPool:
            if self.closed:  # ended by close(), not died: start nothing new
                raise BackendError("the refresh worker was stopped (placer serve is stopping)") from None
            self.pool = self._pool()
            raise BackendError("the refresh worker process died; a new one is started") from None
        except TimeoutError:
            raise BackendError(f"reading Slurm took more than {self.timeout_s:g} s") from None

    def close(self) -> None:
        """Stop now. A refresh in flight is only a read: its worker is ended, not waited for. Waiting kept a
        stopped `placer serve` alive until its read returned (measured: 28 s for a 30 s read; likely the lab
        daemon that outlived the 10 s a CI test gave SIGTERM, just after slurmctld had restarted)."""
        self.closed = True
        workers = list((getattr(self.pool, "_processes", None) or {}).values())  # private: 3.14's terminate_workers
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
        for proc in workers:
            proc.join(5)
