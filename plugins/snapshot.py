"""Slurm's live state as a placer.plan/v1 document: running jobs as placements, down nodes, nodes busy
with no job placer can see, and Slurm's reservations listed (`reservations_of` reads these back)."""
from __future__ import annotations

import math
from typing import Any

from placer.plan_doc import document, plan_row
from topology import Fabric, Problem, RequestError
from topology.hostlists import HostlistError, compress_ordered, expand

from .backend import SlurmReservation, SlurmSnapshot, StateReport


def snapshot_document(fabric: Fabric, snap: SlurmSnapshot, report: StateReport, backend: str) -> dict[str, Any]:
    rows = []
    given: set[tuple[str, int]] = set()  # as to_cluster_state took them: a GPU once, and only one that exists
    for job in report.running:
        ids = {n: [g for g in job.gpu_ids.get(n, ()) if 0 <= g < int(fabric.node_gpus[fabric.node_index[n]])
                   and (n, g) not in given] for n in job.nodes if n in fabric.node_index}
        given |= {(n, g) for n, gs in ids.items() for g in gs}
        if not any(ids.values()):
            continue  # no GPU of the fabric (a CPU-only job): not a placement; its node, if ALLOCATED, is busy
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
    down += [{"node": n, "state": "down", "reason": NOT_IN_SLURM} for n in report.mismatch.get("not in Slurm", ())]
    busy = [{"node": n, "reason": why} for n, why in sorted(report.taken.items())]
    summary = {"running_jobs": len(rows), "running_without_gpus": len(report.running) - len(rows),
               "pending_jobs": sum(j.state == "PENDING" for j in snap.jobs),
               "down_nodes": len(down), "busy_nodes": len(busy), "reservations": len(snap.reservations),
               "gpus_in_use": int(fabric.total_gpus - report.state.free_gpus.sum())}
    parts = snap.partition_nodes()
    extra: dict[str, Any] = {"busy_nodes": busy} if busy else {}
    if snap.reservations:
        extra["reservations"] = [{"name": r.name, "nodes": compress_ordered(list(r.nodes)), "start": r.start,
                                  "end": r.end if math.isfinite(r.end) else None} for r in snap.reservations]
    if parts:
        extra["partitions"] = {p: compress_ordered(list(names)) for p, names in parts.items()}
    return document(fabric, rows, summary, source=f"slurm snapshot ({backend})", down_nodes=down,
                    **extra, warnings=report.warnings)


NOT_IN_SLURM = "not in Slurm: the inventory has it, Slurm does not list it"


def reservations_of(doc: dict[str, Any], source: str) -> tuple[SlurmReservation, ...]:
    """The reservations a snapshot document lists (none: a plan, or Slurm had none). The document has
    passed the schema (apply_plan_document); a node list that is not a hostlist is an error naming it."""
    out = []
    for i, r in enumerate(doc.get("reservations") or []):
        try:
            nodes = tuple(expand(r["nodes"])) if r["nodes"] else ()
        except HostlistError as exc:
            raise RequestError(problems=[Problem(f"reservations[{i}].nodes", str(exc))], source=source) from None
        end = float("inf") if r["end"] is None else float(r["end"])
        out.append(SlurmReservation(str(r["name"]), nodes, float(r["start"]), end))
    return tuple(out)
