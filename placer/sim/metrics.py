"""What a replay measures: per job (leaves, pods, cross-leaf pairs against the unavoidable) and per run."""
from __future__ import annotations

from typing import Any

import numpy as np

from topology import Fabric

from ..bounds import Bounds
from ..index import FabricIndex
from .records import JobRecord


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def set_bounds(rec: JobRecord, b: Bounds) -> None:
    """The job's empty-fabric bounds, and the fewest cross-leaf node pairs it could have (largest leaves
    filled first)."""
    n = rec.nodes_needed
    rec.leaf_bound = b.leaf or 0
    rec.pod_bound = b.pod or 0
    best, rem = 0, n
    for c in np.sort(b.counts)[::-1].tolist():
        if rem <= 0:
            break
        take = min(c, rem)
        best += pairs(take)
        rem -= take
    rec.unavoidable_pairs = pairs(n) - best


def measure(ix: FabricIndex, rec: JobRecord) -> None:
    """Leaves, level-1 groups and cross-leaf node pairs of a started job."""
    f = ix.fabric
    per_leaf: dict[int, int] = {}
    for n, _ in rec.alloc:
        leaf = int(f.node_leaf[n])
        per_leaf[leaf] = per_leaf.get(leaf, 0) + 1
    rec.leaves = len(per_leaf)
    rec.pods = len({int(ix.anc[1][l]) for l in per_leaf}) if ix.depth > 1 else 1
    rec.cross_pairs = pairs(len(rec.alloc)) - sum(pairs(c) for c in per_leaf.values())


def multi_node_placed(records: list[JobRecord]) -> list[JobRecord]:
    """The jobs the leaf-bound figures are about: placed, on more than one whole node."""
    return [r for r in records if r.status == "placed" and r.multi and r.nodes_needed > 1]


SHORT_RUN_S = 3600.0  # "short" multi-node jobs: the ones a hold for locality costs most beside their run


def short_multi_waits(multi: list[JobRecord]) -> np.ndarray:
    """The waits of the multi-node jobs that ran under SHORT_RUN_S: a mean over all jobs hides them."""
    return np.asarray([r.wait_s or 0.0 for r in multi if r.ran()[1] - r.ran()[0] < SHORT_RUN_S], dtype=float)


def summarize_records(fabric: Fabric, records: list[JobRecord]) -> dict[str, Any]:
    placed = [r for r in records if r.status == "placed"]
    runs = [r.ran() for r in placed]
    multi = multi_node_placed(records)
    waits = np.asarray([s - (r.job.submit_time or 0.0) for r, (s, _) in zip(placed, runs)], dtype=float)
    gpu_s = sum(len(ids) * (e - s) for r, (s, e) in zip(placed, runs) for _, ids in r.alloc)
    t0 = min((r.job.submit_time or 0.0) for r in records) if records else 0.0
    t1 = max((e for _, e in runs), default=t0)
    makespan = max(t1 - t0, 1e-9)
    # the busy period: until the last job started (after it, nothing waits, so no policy can do better)
    t_busy = max((s for s, _ in runs), default=t0)
    busy_s = sum(len(ids) * (min(e, t_busy) - s) for r, (s, e) in zip(placed, runs) for _, ids in r.alloc
                 if s < t_busy)
    w = np.asarray([r.job.gpus * (r.ran()[1] - r.ran()[0]) / 3600.0 for r in multi], dtype=float)
    excess = np.asarray([r.cross_pairs - r.unavoidable_pairs for r in multi], dtype=float)
    allp = np.asarray([pairs(r.nodes_needed) for r in multi], dtype=float)
    short = short_multi_waits(multi)
    return {
        "jobs": len(records),
        "placed": len(placed),
        "unplaceable": sum(r.status == "unplaceable" for r in records),
        "never_started": sum(r.status == "pending" for r in records),
        "multi_node_jobs": len(multi),
        "at_leaf_lower_bound": (sum(r.leaves <= r.leaf_bound for r in multi) / len(multi)) if multi else None,
        "mean_leaves_over_bound": float(np.mean([r.leaves - r.leaf_bound for r in multi])) if multi else None,
        # beyond the bound although the nodes the policy was offered then allowed fewer leaves: the
        # policy's own share of the misses (the rest is the state the scheduler started the job in)
        "beyond_bound_by_choice": (sum(r.leaves > r.leaf_bound_now for r in multi) / len(multi)) if multi else None,
        "more_pods_than_needed": (sum(r.pods > r.pod_bound for r in multi) / len(multi)) if multi else None,
        "excess_cross_leaf_pairs": float((w * excess).sum() / (w * allp).sum()) if multi and (w * allp).sum() else 0.0,
        "mean_wait_s": float(waits.mean()) if waits.size else 0.0,
        "p95_wait_s": float(np.percentile(waits, 95)) if waits.size else 0.0,
        "short_multi_node_jobs": int(short.size),
        "short_multi_p95_wait_s": float(np.percentile(short, 95)) if short.size else None,
        "utilisation": float(gpu_s / (fabric.total_gpus * makespan)),
        "busy_period_s": float(t_busy - t0),
        "utilisation_busy_period": float(busy_s / (fabric.total_gpus * max(t_busy - t0, 1e-9))),
        "makespan_s": float(makespan),
    }


def utilisation_in(fabric: Fabric, records: list[JobRecord], t0: float, t1: float) -> float:
    """Share of the fabric's GPU-time in [t0, t1] that jobs used: compare policies over one window."""
    if t1 <= t0:
        return 0.0
    used = sum(len(ids) * max(min(r.ran()[1], t1) - max(r.ran()[0], t0), 0.0)
               for r in records if r.status == "placed" for _, ids in r.alloc)
    return used / (fabric.total_gpus * (t1 - t0))


def common_busy_window(runs: dict[str, list[JobRecord]]) -> tuple[float, float]:
    """From the first submit to the latest last-start over all policies."""
    t0 = min((r.job.submit_time or 0.0) for recs in runs.values() for r in recs)
    t1 = max((r.start for recs in runs.values() for r in recs if r.start is not None), default=t0)
    return t0, t1
