"""Slurm's live state as a placer.plan/v1 document: running jobs as placements, down nodes listed."""
from __future__ import annotations

from typing import Any

from placer.plan_doc import document, plan_row
from topology import Fabric
from topology.hostlists import compress_ordered

from .backend import SlurmSnapshot, StateReport


def snapshot_document(fabric: Fabric, snap: SlurmSnapshot, report: StateReport, backend: str) -> dict[str, Any]:
    rows = []
    for job in report.running:
        ids = {n: list(job.gpu_ids.get(n, ())) for n in job.nodes if n in fabric.node_index}
        rows.append(plan_row(
            job=str(job.job_id), status="placed", gpus=sum(len(v) for v in ids.values()), nodes=list(job.nodes),
            gpu_ids={n: v for n, v in ids.items() if v},
            leaves=len({int(fabric.node_leaf[fabric.node_index[n]]) for n in ids}), leaf_lower_bound=None,
            pods=None, pod_lower_bound=None, cost=None,
            reason=f"running in Slurm as {job.name!r} (user {job.user_id}, partition {job.partition})",
            solver="slurm", priority=job.priority, **({"end": float(job.end_time)} if job.end_time else {}),
            **({"start": float(job.end_time - job.time_limit_s)} if job.end_time and job.time_limit_s else {})))
    down = [{"node": n.name, "state": n.state, "reason": n.reason} for n in snap.nodes
            if n.state != "up" and n.name in fabric.node_index]
    summary = {"running_jobs": len(rows), "pending_jobs": sum(j.state == "PENDING" for j in snap.jobs),
               "down_nodes": len(down), "gpus_in_use": int(fabric.total_gpus - report.state.free_gpus.sum())}
    parts = snap.partition_nodes()
    extra = {"partitions": {p: compress_ordered(list(names)) for p, names in parts.items()}} if parts else {}
    return document(fabric, rows, summary, source=f"slurm snapshot ({backend})", down_nodes=down,
                    **extra, warnings=report.warnings)
