"""CPUs as well as GPUs: a node Slurm shows MIXED may have its GPUs free and too few CPUs left for a job.

Both figures are bounds in the safe direction. A job's need is a lower bound (what it must get on every
node: a task is never split, `--mincpus`, CPUs per GPU; a one-node job's whole CPU count); a node's free
CPUs an upper bound (its CPUs less those known taken). A node is kept off only when even the upper bound is
below the lower one: Slurm could not start the job there. What placer cannot read (a backend that does
not say, jobs hidden by PrivateData) only makes it keep off fewer nodes, as before this existed.

Per node of the fabric, as numpy arrays: a job's exclusion is a mask (`JobRequest.off_mask`), since on a
busy 27,648-node cluster it can be most of the nodes (names cost the daemon 30 ms a decision).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from topology import Fabric

from .backend import SlurmJob, SlurmNode, ineligible

# Slurm's "not given" markers for its 16- and 32-bit fields (NO_VAL16, NO_VAL, INFINITE...)
_UNSET16, _UNSET32 = 65534, 4294967294
UNKNOWN = 1 << 40  # the free CPUs of a node whose CPUs the backend did not say: never too few
# the job states whose CPUs count as taken: not COMPLETING (its CPUs free within seconds, and squeue still
# lists every node's CPUs while its GPUs read free: the lab's 22.05 and 24.11 both showed it), nor SUSPENDED
# (gang scheduling lets others use them): counting them would keep off nodes a job could use
HOLDS_CPUS = frozenset({"RUNNING", "CONFIGURING"})


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
    """Per node of the fabric: its free CPUs at most (`UNKNOWN` when the backend did not say), and the CPUs
    known taken; `with_taken` adds what advice or pins took since the snapshot."""

    free: np.ndarray  # int64
    used: np.ndarray  # int64

    def short_of(self, need: int) -> np.ndarray:
        """The nodes that cannot give `need` CPUs (bool per node): Slurm would not start a job that needs
        them there (with `need` 1: the nodes with no CPU left)."""
        return self.free < max(need, 1)

    def busy(self) -> np.ndarray:
        """The nodes with a CPU taken (bool per node): an --exclusive job cannot start there."""
        return self.used > 0

    def with_taken(self, since: Mapping[int, int]) -> CpuRoom:
        """This room with `since` CPUs (node index -> CPUs) taken by advice or pins since its snapshot."""
        if not since:
            return self
        idx = np.fromiter(since.keys(), dtype=np.int64, count=len(since))
        add = np.fromiter(since.values(), dtype=np.int64, count=len(since))
        free, used = self.free.copy(), self.used.copy()
        np.subtract.at(free, idx, add)
        np.add.at(used, idx, add)
        return replace(self, free=free, used=used)

    def mixed(self) -> int:
        """How many nodes have some CPUs taken and some free."""
        return int(((self.used > 0) & (self.free > 0) & (self.free < UNKNOWN)).sum())


def cpu_room(fabric: Fabric, nodes: Iterable[SlurmNode], jobs: Iterable[SlurmJob], now: float) -> CpuRoom:
    """Each node's free CPUs at most: its CPUs less those known taken: the running jobs' CPUs on it, and
    what a pending job Slurm will start on its required nodes needs there, as `SlurmSnapshot.spoken_for`
    keeps their GPUs. From the jobs, as the GPUs are, not from sinfo's count: that one lags (a node whose
    job just ended still shows its CPUs taken while squeue shows its GPUs free), and the two views must
    agree on what is free now. Nodes whose CPUs the backend did not say are never short."""
    ix = fabric.node_index
    taken = np.zeros(fabric.n_nodes, dtype=np.int64)
    for j in jobs:
        if j.state in HOLDS_CPUS:
            for name, c in j.cpus_by_node.items():
                if (i := ix.get(name)) is not None:
                    taken[i] += max(c, 0)
        elif j.state == "PENDING" and j.required_nodes and not j.held and not ineligible(j, now):
            for name in j.required_nodes:
                if (i := ix.get(name)) is not None:
                    taken[i] += max(j.cpus_per_node, 1)
    free = np.full(fabric.n_nodes, UNKNOWN, dtype=np.int64)
    seen = np.zeros(fabric.n_nodes, dtype=bool)
    for n in nodes:
        i = ix.get(n.name)
        if i is None or n.cpus is None or seen[i]:  # a node listed twice (two partitions): the first counts
            continue
        seen[i] = True
        free[i] = n.cpus - taken[i]
    return CpuRoom(free, taken)
