"""Slurm jobs as JobRequests: one translator per Slurm source, keeping every constraint the user gave.

  job_from_hook   the job description job_submit.lua sends `placer serve` at submit time
  job_from_slurm  a job as squeue --json or pyslurm show it (`placer apply`, `placer replace`)

(Job files and trace rows have theirs in placer/jobs.py: `job_from_mapping`.) A constraint the planner
does not honour yet is still carried (JobRequest.not_yet_honoured names it), so that the caller can
leave such a job to Slurm unchanged instead of placing it somewhere it may not run.
"""
from __future__ import annotations

from typing import Any

from placer import JobRequest
from placer.jobs import split_constraint
from topology.hostlists import HostlistError, expand

from .backend import SlurmJob, parse_tres_gpu_model, parse_tres_gpus


def _text(req: dict[str, Any], key: str) -> str:
    v = req.get(key)
    return str(v).strip() if v is not None else ""


def _int(req: dict[str, Any], key: str) -> int | None:
    v = req.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def job_from_hook(req: dict[str, Any]) -> tuple[JobRequest | None, str]:
    """The hook's request -> (job, "") or (None, why not a GPU job placer can read)."""
    per_job = parse_tres_gpus(req.get("tres_per_job"))
    per_node = parse_tres_gpus(req.get("tres_per_node"))
    nodes = _int(req, "min_nodes") or 1
    gpus = per_job or per_node * nodes
    if gpus <= 0:
        return None, "no GPUs requested"
    exclusive = req.get("shared") == 0
    try:
        exclude = tuple(expand(_text(req, "exc_nodes"))) if _text(req, "exc_nodes") else ()
        required = tuple(expand(_text(req, "req_nodes"))) if _text(req, "req_nodes") else ()
    except HostlistError:
        return None, "unreadable --exclude or --nodelist"
    features, constraint = split_constraint(_text(req, "features"))
    minutes = _int(req, "time_limit")
    model = parse_tres_gpu_model(req.get("tres_per_job")) or parse_tres_gpu_model(req.get("tres_per_node"))
    return JobRequest(job_id=_text(req, "name") or "submit", gpus=gpus,
                      gpus_per_node=per_node if per_node and (nodes > 1 or exclusive) else None,
                      features=tuple(features), constraint=constraint, gpu_model=model, exclude=exclude,
                      required_nodes=required, partition=_text(req, "partition") or None,
                      qos=_text(req, "qos") or None, exclusive=exclusive,
                      time_limit_s=minutes * 60.0 if minutes else None), ""


def job_from_slurm(j: SlurmJob, partition_nodes: tuple[str, ...] | None = None) -> JobRequest:
    """A pending Slurm job, as it asks to run (its GPUs, nodes, constraints, partition, priority)."""
    multi = j.node_count > 1
    features, constraint = split_constraint(j.features)
    return JobRequest(job_id=str(j.job_id), gpus=max(j.gpus, 1),
                      gpus_per_node=j.gpus_per_node if multi and j.gpus_per_node else None,
                      priority=j.priority, features=tuple(features), constraint=constraint, gpu_model=j.gpu_model,
                      exclude=j.excluded_nodes, required_nodes=j.required_nodes, partition=j.partition or None,
                      partition_nodes=partition_nodes, qos=j.qos or None, exclusive=j.exclusive,
                      time_limit_s=j.time_limit_s, submit_time=float(j.submit_time))
