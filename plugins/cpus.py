"""CPUs as well as GPUs: a node Slurm shows MIXED may have its GPUs free and too few CPUs left for a job.

Both figures are bounds in the safe direction. A job's need is a lower bound (what it must get on every
node: a task is never split, `--mincpus`, CPUs per GPU; a one-node job's whole CPU count); a node's free
CPUs an upper bound (its CPUs less those known taken). A node is kept off only when even the upper bound is
below the lower one: Slurm could not start the job there. What placer cannot read (a backend that does
not say, jobs hidden by PrivateData) only makes it keep off fewer nodes, as before this existed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .backend import SlurmJob, SlurmNode

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
    """Nodes with some CPUs taken and some free (MIXED), by their free CPUs (an upper bound), fewest first."""

    names: tuple[str, ...] = ()
    free: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def short_of(self, need: int) -> tuple[str, ...]:
        """The nodes that cannot give `need` CPUs: Slurm would not start a job that needs them there."""
        return self.names[:int(np.searchsorted(self.free, need))] if need > 1 else ()


def cpu_room(nodes: Iterable[SlurmNode], jobs: Iterable[SlurmJob]) -> CpuRoom:
    """Each node's free CPUs at most: its CPUs less the most we know taken (the backend's count for the
    node, or the running jobs' CPUs on it). Nodes whose CPUs the backend did not say are left out."""
    taken: dict[str, int] = {}
    for j in jobs:
        if j.running:
            for name, c in j.cpus_by_node.items():
                taken[name] = taken.get(name, 0) + max(c, 0)
    free: dict[str, int] = {}
    for n in nodes:
        if n.cpus is None or n.name in free:
            continue
        used = max(n.alloc_cpus or 0, taken.get(n.name, 0))
        if 0 < used < n.cpus:
            free[n.name] = n.cpus - used
    order = sorted(free, key=lambda name: free[name])
    return CpuRoom(tuple(order), np.asarray([free[n] for n in order], dtype=np.int64))
