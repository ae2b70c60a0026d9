"""CPUs as well as GPUs: a node Slurm shows MIXED may have its GPUs free and too few CPUs left for a job.

Both figures are bounds in the safe direction. A job's need is a lower bound (what it must get on every
node: a task is never split, `--mincpus`, CPUs per GPU; a one-node job's whole CPU count); a node's free
CPUs an upper bound (its CPUs less those known taken). A node is kept off only when even the upper bound is
below the lower one: Slurm could not start the job there. What placer cannot read (a backend that does
not say, jobs hidden by PrivateData) only makes it keep off fewer nodes, as before this existed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .backend import SlurmJob, SlurmNode, ineligible

# Slurm's "not given" markers for its 16- and 32-bit fields (NO_VAL16, NO_VAL, INFINITE...)
_UNSET16, _UNSET32 = 65534, 4294967294


def _given(v: int | None, unset: int) -> int:
    return v if v is not None and 0 < v < unset else 0


def cpus_per_node_needed(nodes: int, min_cpus: int | None = None, pn_min_cpus: int | None = None,
                         cpus_per_task: int | None = None, tasks_per_node: int | None = None,
                         cpus_per_gpu: int | None = None, gpus_per_node: int | None = None) -> int:
    """The fewest CPUs a job gets on each of its nodes (Slurm's request fields; None or Slurm's unset marker:
    not given): `--mincpus`, one task's CPUs (never split), tasks per node times CPUs per task, CPUs per GPU
    times the node's GPUs, and for a one-node job all its CPUs. At least 1."""
    per_task = _given(cpus_per_task, _UNSET16)
    need = max(1, _given(pn_min_cpus, _UNSET16), per_task, per_task * _given(tasks_per_node, _UNSET16),
               _given(cpus_per_gpu, _UNSET16) * _given(gpus_per_node, _UNSET32))
    return max(need, _given(min_cpus, _UNSET32)) if nodes <= 1 else need


@dataclass(frozen=True)
class CpuRoom:
    """Nodes with some CPUs taken and some free (MIXED), by their free CPUs (an upper bound), fewest first;
    each node's CPUs, and what advice since the snapshot took (`with_taken`)."""

    names: tuple[str, ...] = ()
    free: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cpus: Mapping[str, int] = field(default_factory=dict)  # every node whose CPUs the backend said
    used: Mapping[str, int] = field(default_factory=dict)  # at least this many taken (nodes with any)
    since: Mapping[str, int] = field(default_factory=dict)  # taken by advice since the snapshot

    def short_of(self, need: int) -> tuple[str, ...]:
        """The nodes that cannot give `need` CPUs: Slurm would not start a job that needs them there."""
        if need <= 1 and not self.since:
            return ()
        out = self.names[:int(np.searchsorted(self.free, need))] if need > 1 else ()
        later = [n for n, c in self.since.items() if self.free_of(n) < need and n not in out]
        return (*out, *later) if later else out

    def free_of(self, name: str) -> int:
        """A node's free CPUs at most, advice since the snapshot counted (a large number when not known)."""
        if name not in self.cpus:
            return 1 << 30
        return self.cpus[name] - self.used.get(name, 0) - self.since.get(name, 0)

    def taken(self, name: str) -> bool:
        """Some CPU of the node is taken (an --exclusive job cannot start there)."""
        return self.used.get(name, 0) + self.since.get(name, 0) > 0

    def busy(self) -> tuple[str, ...]:
        """Every node with a CPU taken that is not full (full ones are taken whole already)."""
        return (*self.names, *(n for n in self.since if n not in self.used))

    def with_taken(self, since: Mapping[str, int]) -> CpuRoom:
        """This room with `since` CPUs per node taken by advice given after its snapshot."""
        return replace(self, since=dict(since)) if since else self


def cpu_room(nodes: Iterable[SlurmNode], jobs: Iterable[SlurmJob], now: float) -> CpuRoom:
    """Each node's free CPUs at most: its CPUs less the most we know taken (the backend's count for the
    node, or the running jobs' CPUs on it, and what a pending job Slurm will start on its required nodes
    needs there, as `SlurmSnapshot.spoken_for` keeps their GPUs). Nodes whose CPUs the backend did not
    say are left out."""
    taken: dict[str, int] = {}
    for j in jobs:
        if j.running:
            for name, c in j.cpus_by_node.items():
                taken[name] = taken.get(name, 0) + max(c, 0)
        elif j.state == "PENDING" and j.required_nodes and not j.held and not ineligible(j, now):
            for name in j.required_nodes:
                taken[name] = taken.get(name, 0) + max(j.cpus_per_node, 1)
    cpus: dict[str, int] = {}
    used: dict[str, int] = {}
    for n in nodes:
        if n.cpus is None or n.name in cpus:
            continue
        cpus[n.name] = n.cpus
        if (u := max(n.alloc_cpus or 0, taken.get(n.name, 0))) > 0:
            used[n.name] = u
    order = sorted((n for n, u in used.items() if u < cpus[n]), key=lambda n: cpus[n] - used[n])
    return CpuRoom(tuple(order), np.asarray([cpus[n] - used[n] for n in order], dtype=np.int64), cpus, used)
