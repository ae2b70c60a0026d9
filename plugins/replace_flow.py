"""The `placer ranks` / `placer replace` workflows: find a job (in a plan or in the live Slurm), choose
replacements for its failed nodes, and apply them to Slurm (pin, clear the begin time, release).

The choosing is placer's (placer/replace.py, placer/ranks.py); this module only reads Slurm and
writes to it, so the command line stays a thin shell around it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from placer.index import index_for
from placer.plan_doc import apply_plan_document
from placer.ranks import Parallelism, Slot, placer_layout, traffic
from placer.replace import ReplacePlan, allowed_nodes, choose_replacements
from topology import ClusterState, Fabric, RequestError
from topology.hostlists import HostlistError, compress, expand

from .backend import Backend, SlurmJob, SlurmReservation, reserved_nodes, to_cluster_state
from .cpus import CpuRoom, cpu_room
from .requests import placeable_from_slurm
from .snapshot import reservations_of


@dataclass
class JobView:
    """A job's nodes and GPUs, the cluster around it, and (live) where it came from."""

    job: str
    nodes: list[str]
    gpu_ids: dict[str, list[int]]
    state: ClusterState
    backend: Backend | None = None
    slurm_job: SlurmJob | None = None
    partitions: dict[str, tuple[str, ...]] | None = None  # Slurm's partitions' nodes (live)
    spoken: np.ndarray | None = None  # nodes other pending jobs will start on (live)
    reservations: tuple[SlurmReservation, ...] = ()  # Slurm's (live, or a snapshot's): a replacement keeps off them
    cpu_room: CpuRoom | None = None  # live: nodes with too few CPUs left (plugins/cpus.py)


def job_in_plan(fabric: Fabric, doc: Any, job: str, source: str) -> JobView:
    """A placed job of a placer.plan/v1 document, on the state the whole document leaves."""
    state = ClusterState(fabric)
    apply_plan_document(fabric, state, doc, source)
    for p in doc.get("placements", []):
        if str(p.get("job")) == job and p.get("status") == "placed":
            ids = {n: list(v) for n, v in p["gpu_ids"].items()}
            return JobView(job, list(p.get("nodes") or ids), ids, state, reservations=reservations_of(doc, source))
    raise RequestError(f"{source}: no placed job {job!r}")


def job_in_slurm(fabric: Fabric, be: Backend, job: str, nodes_opt: str | None = None) -> JobView:
    """A job as Slurm shows it: a running job's nodes; otherwise (requeued, completing: a partial list)
    the nodes given, or those it requires."""
    snap = be.snapshot()
    state = to_cluster_state(fabric, snap).state
    match = [j for j in snap.jobs if str(j.job_id) == job]
    if not match:
        raise RequestError(f"Slurm has no job {job}")
    j = match[0]
    try:
        given = expand(nodes_opt) if nodes_opt else []
    except HostlistError as exc:
        raise RequestError(f"--nodes: {exc}") from None
    nodes = list(j.nodes) if j.state == "RUNNING" else list(given or j.required_nodes or j.nodes)
    if not nodes:
        raise RequestError(f"job {job} shows no nodes in Slurm (requeued?): give its old nodes with --nodes")
    bad = [n for n in nodes if n not in fabric.node_index]
    if bad:
        raise RequestError(f"job {job} runs on nodes outside the fabric: {compress(bad)}")
    gpu_ids = {n: list(j.gpu_ids.get(n) or range(int(fabric.node_gpus[fabric.node_index[n]]))) for n in nodes}
    return JobView(job, nodes, gpu_ids, state, be, j, snap.partition_nodes(), snap.spoken_for(fabric, time.time()),
                   snap.reservations, cpu_room(fabric, snap.nodes, snap.jobs, time.time()))


def job_pending_again(fabric: Fabric, be: Backend, job: str, nodes_opt: str | None, timeout_s: float = 60
                      ) -> JobView:
    """For --apply: wait out a requeue in progress (COMPLETING), then the job must be PENDING."""
    view = job_in_slurm(fabric, be, job, nodes_opt)
    deadline = time.monotonic() + timeout_s
    while view.slurm_job is not None and view.slurm_job.state == "COMPLETING" and time.monotonic() < deadline:
        time.sleep(0.5)
        view = job_in_slurm(fabric, be, job, nodes_opt)
    state = view.slurm_job.state if view.slurm_job else "?"
    if state != "PENDING":
        raise RequestError(f"job {job} is {state}: requeue it first (scontrol requeuehold {job})")
    return view


@dataclass
class ReplaceResult:
    plan: ReplacePlan
    layout_after: list[Slot] | None = None
    traffic_before: dict[str, float] | None = None
    traffic_after: dict[str, float] | None = None
    applied: list[str] = field(default_factory=list)
    unchecked: str = ""  # why the job's constraints could not be checked ("": they were)


def replace_nodes(fabric: Fabric, view: JobView, failed: list[str], spares_per_su: int,
                  par: Parallelism | None) -> ReplaceResult:
    """Replacements for the failed nodes (treated as down), and with a rank order, the traffic it costs."""
    for n in failed:
        if n in fabric.node_index:
            view.state.set_usable(fabric.node_index[n], False)
    allowed, unchecked = _constraints(fabric, view, failed)
    plan = choose_replacements(fabric, view.state, view.nodes, failed, spares_per_su, allowed, view.spoken)
    result = ReplaceResult(plan, unchecked=unchecked)
    if par is not None:
        before = placer_layout(fabric, view.gpu_ids, par)
        swap = {fabric.node_index[r.failed]: fabric.node_index[r.node] for r in result.plan.replacements if r.node}
        result.layout_after = [(swap.get(n, n), g) for n, g in before]
        result.traffic_before, result.traffic_after = traffic(fabric, before, par), traffic(fabric, result.layout_after,
                                                                                              par)
    return result


def _constraints(fabric: Fabric, view: JobView, failed: list[str]) -> tuple[np.ndarray | None, str]:
    """The nodes a replacement may be, by the live job's constraints as Slurm shows them (its -w aside:
    the replacement changes its node list on purpose), or None and why they cannot be checked."""
    if view.slurm_job is None:  # a document: only a snapshot's reservations are known (a plan's job, no limit)
        off = reserved_nodes(view.reservations, time.time(), None)
        allowed = None
        if off:
            allowed = view.state.usable.copy()
            allowed[[fabric.node_index[n] for n in off if n in fabric.node_index]] = False
        return allowed, "a plan does not carry the job's constraints"
    job, why = placeable_from_slurm(view.slurm_job, view.partitions, own_pin=True, reservations=view.reservations,
                                    now=time.time(), cpu_room=view.cpu_room)
    if job is None:
        return None, why
    kept = [n for n in view.nodes if n not in failed]
    allowed = allowed_nodes(index_for(fabric), view.state, job, kept)
    if allowed is None:
        return None, "its other nodes meet none of its constraints by the inventory"
    return allowed, ""


def apply_replacement(view: JobView, nodes: list[str], keep_begin_time: bool) -> list[str]:
    """Pin the job to its new nodes, clear Slurm's begin-time delay (unless kept), release it if held."""
    assert view.backend is not None and view.slurm_job is not None, "a live job"
    j = view.slurm_job
    view.backend.pin(j.job_id, compress(nodes), len(nodes))
    done = [f"pinned to {compress(nodes)}"]
    if not keep_begin_time:
        view.backend.start_now(j.job_id)
    if j.held:
        view.backend.release(j.job_id)
        done.append("released")
    return done
