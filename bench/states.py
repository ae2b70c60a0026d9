"""Realistic fragmented cluster states for benchmarks: fill with a job mix, then let random jobs end."""
from __future__ import annotations

import numpy as np

from topology import ClusterState, Fabric

# job sizes in nodes for multi-node jobs, shaped like Alibaba's 2026 spot trace (workers per job)
MULTI_NODE_SIZES = np.array([2, 4, 8, 16, 32, 64, 128])
MULTI_NODE_WEIGHTS = np.array([13142, 5267, 2486, 872, 755, 84, 15], dtype=float)
SMALL_GPUS = np.array([1, 2, 4, 8])
SMALL_WEIGHTS = np.array([0.55, 0.15, 0.15, 0.15])


def mixed_job_gpus(rng: np.random.Generator) -> int:
    """One job of the benchmarks' queues: half 1-8 GPUs, half 2-128 whole 8-GPU nodes (the mix above)."""
    if rng.random() < 0.5:
        return int(rng.choice(SMALL_GPUS, p=SMALL_WEIGHTS))
    return 8 * int(rng.choice(MULTI_NODE_SIZES, p=MULTI_NODE_WEIGHTS / MULTI_NODE_WEIGHTS.sum()))


def fragmented_state(fabric: Fabric, busy: float = 0.80, seed: int = 0, overfill: float = 0.10) -> ClusterState:
    """Fill to busy+overfill with multi-node jobs (pod-local, random leaves) and small jobs (random nodes),
    then end random jobs until `busy` of all GPUs are in use: the holes a real history leaves."""
    return fragmented_jobs(fabric, busy, seed, overfill)[0]


Alloc = list[tuple[int, list[int]]]


def fragmented_jobs(fabric: Fabric, busy: float = 0.80, seed: int = 0, overfill: float = 0.10
                    ) -> tuple[ClusterState, list[Alloc]]:
    """fragmented_state, and the jobs left running (each its GPUs)."""
    rng = np.random.default_rng(seed)
    state = ClusterState(fabric)
    total = fabric.total_gpus
    jobs: list[Alloc] = []
    used = 0
    leaves_of_pod: dict[int, np.ndarray] = {}
    pod_of_leaf = np.array([fabric.group_ancestors(l)[min(1, len(fabric.group_ancestors(l)) - 1)]
                            for l in range(fabric.n_leaves)])
    for pod in np.unique(pod_of_leaf):
        leaves_of_pod[int(pod)] = np.nonzero(pod_of_leaf == pod)[0]
    target = (busy + overfill) * total
    fails = 0
    while used < target and fails < 200:
        if rng.random() < 0.6:  # a multi-node job, in one pod, on random leaves
            n = int(rng.choice(MULTI_NODE_SIZES, p=MULTI_NODE_WEIGHTS / MULTI_NODE_WEIGHTS.sum()))
            pod = int(rng.choice(list(leaves_of_pod)))
            alloc: list[tuple[int, list[int]]] = []
            for leaf in rng.permutation(leaves_of_pod[pod]).tolist():
                nodes = fabric.nodes_of_leaf(leaf)
                free = nodes[(state.free_mask[nodes] == state.full_mask[nodes]) & state.usable[nodes]]
                for v in free[: n - len(alloc)].tolist():
                    alloc.append((v, list(range(int(fabric.node_gpus[v])))))
                if len(alloc) >= n:
                    break
            if len(alloc) < n:
                fails += 1
                continue
        else:  # a small job on one random node with room
            g = int(rng.choice(SMALL_GPUS, p=SMALL_WEIGHTS))
            v = int(rng.integers(fabric.n_nodes))
            ids = state.free_gpu_ids(v)
            if len(ids) < g or not state.usable[v]:
                fails += 1
                continue
            alloc = [(v, ids[:g])]
        for v, ids in alloc:
            state.allocate(v, ids)
            used += len(ids)
        jobs.append(alloc)
        fails = 0
    ended: set[int] = set()
    for k in rng.permutation(len(jobs)).tolist():  # jobs end in random order
        if used <= busy * total:
            break
        for v, ids in jobs[k]:
            state.release(v, ids)
            used -= len(ids)
        ended.add(k)
    return state, [a for k, a in enumerate(jobs) if k not in ended]
