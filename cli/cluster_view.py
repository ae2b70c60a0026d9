"""The cluster as the admin commands see it (`status`, `why`): live through a Slurm backend, or offline
from an inventory and a snapshot or plan document (`--state`), exactly like `placer plan`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import click

from placer.plan_doc import apply_plan_document
from placer.why import Running
from plugins.backend import SlurmJob, SlurmReservation, running_of, to_cluster_state
from plugins.cpus import CpuRoom, cpu_room
from plugins.pyslurm_backend import choose_backend
from plugins.snapshot import reservations_of
from topology import ClusterState, Fabric, RequestError
from topology.hostlists import HostlistError, expand

from .config import load_config
from .files import load_fabric, read_document
from .report import warn


@dataclass
class ClusterView:
    fabric: Fabric
    state: ClusterState
    source: str  # "slurm (slurm-cli)" or the --state file
    partitions: dict[str, tuple[str, ...]] | None = None  # name -> nodes, when known
    jobs: list[SlurmJob] = field(default_factory=list)  # live only: every job Slurm listed
    doc: dict | None = None  # offline: the --state document
    reservations: tuple[SlurmReservation, ...] = ()  # Slurm's reservations (offline: a snapshot's)
    cpu_room: CpuRoom | None = None  # live only: nodes with too few CPUs left for some jobs (plugins/cpus.py)


def cluster_view(inventory: str | None, state_path: str | None, config_path: str | None, backend: str | None,
                 slurm_conf: str | None) -> ClusterView:
    """Offline with --state (no Slurm needed), else live through the backend."""
    site = load_config(config_path)
    inv = site.need_inventory(inventory)
    fabric, problems = load_fabric(inv)
    warn(problems, inv)
    state = ClusterState(fabric)
    if state_path:
        doc = read_document(state_path, "json")
        apply_plan_document(fabric, state, doc, state_path)
        return ClusterView(fabric, state, state_path, _partitions(doc, state_path), doc=doc,
                           reservations=reservations_of(doc, state_path))
    be = choose_backend(backend or site.backend, slurm_conf or site.slurm_conf)
    snap = be.snapshot()
    report = to_cluster_state(fabric, snap)
    for w in report.warnings:
        click.echo(f"placer: warning: {w}", err=True)
    return ClusterView(fabric, report.state, f"slurm ({be.name})", snap.partition_nodes(), list(snap.jobs),
                       reservations=snap.reservations, cpu_room=cpu_room(fabric, snap.nodes, snap.jobs, time.time()))


def running_jobs(view: ClusterView) -> list[Running]:
    """Running jobs with their expected ends: Slurm's EndTime live, the rows' `end` offline (None: unknown)."""
    f = view.fabric
    out = []
    if view.doc is not None:
        for row in view.doc.get("placements", []):
            if row.get("status") == "placed":
                alloc = [(f.node_index[n], tuple(ids)) for n, ids in row["gpu_ids"].items() if n in f.node_index]
                out.append(Running(str(row["job"]), row.get("end"), alloc, row.get("start")))
        return out
    return running_of(f, view.jobs)


def _partitions(doc: dict, source: str) -> dict[str, tuple[str, ...]] | None:
    parts = doc.get("partitions")
    if not parts:
        return None
    try:
        return {str(p): tuple(expand(h)) for p, h in parts.items()}
    except HostlistError as exc:
        raise RequestError(f"{source}: partitions: {exc}") from None
