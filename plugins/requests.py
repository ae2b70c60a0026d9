"""Slurm jobs as JobRequests: one translator per Slurm source, keeping every constraint the user gave.

  job_from_hook   the job description job_submit.lua sends `placer serve` at submit time
  job_from_slurm  a job as squeue --json or pyslurm show it (`placer apply`, `placer replace`)

(Job files and trace rows have theirs in placer/jobs.py: `job_from_mapping`.) A constraint the planner
does not honour yet is still carried (JobRequest.not_yet_honoured names it), so that the caller can
leave such a job to Slurm unchanged instead of placing it somewhere it may not run.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from placer import JobRequest
from placer.jobs import split_constraint
from placer.timeline import OffAt
from topology.hostlists import HostlistError, expand

from .backend import (
    SlurmJob,
    SlurmReservation,
    begins_later,
    parse_tres_gpu_model,
    parse_tres_gpus,
    reserved_nodes,
)
from .cpus import CpuRoom, cpus_per_node_needed


def _text(req: dict[str, Any], key: str) -> str:
    v = req.get(key)
    return str(v).strip() if v is not None else ""


def _int(req: dict[str, Any], key: str) -> int | None:
    v = req.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def started_together(array: bool, het: bool) -> str:
    """Why a job Slurm starts as one of several is left to Slurm unchanged ("" if it is not one). Every task
    of a job array gets the job's settings: one node set advised or pinned for all of them would run them
    one after another (and scontrol refuses to change a pending array's node count). A heterogeneous job's
    components start together, and placer places one job at a time."""
    if array:
        return "a job array is left to Slurm (one node set for every task would run its tasks one at a time)"
    if het:
        return "a heterogeneous job is left to Slurm (its components start together; placer places jobs one by one)"
    return ""


def in_reservation(name: str) -> str:
    """Why a job that runs in a Slurm reservation (`--reservation`) is left to Slurm ("" if it does not):
    the reservation's nodes, users and times are Slurm's to honour."""
    return f"a job in reservation {name[:60]} is left to Slurm" if name else ""


def off_reservations(job: JobRequest, reservations: Sequence[SlurmReservation], now: float) -> JobRequest:
    """`job` kept off the nodes of every reservation it would run into if started now (`reserved_nodes`):
    Slurm would not start it there, and a job advised or pinned to them would wait for the reservation's end."""
    return _kept_off(job, reserved_nodes(reservations, now, job.time_limit_s))


def off_short_of_cpus(job: JobRequest, need: int, room: CpuRoom | None) -> JobRequest:
    """`job` kept off the nodes that cannot give it `need` CPUs on each (plugins/cpus.py; an --exclusive job:
    every node with a CPU taken). Slurm would not start it there, whatever GPUs are free."""
    if room is None:
        return job
    off = room.busy() if job.exclusive else room.short_of(need)
    if not off.any():
        return job
    return replace(job, off_mask=off if job.off_mask is None else job.off_mask | off)


def _kept_off(job: JobRequest, nodes: Sequence[str]) -> JobRequest:
    return replace(job, exclude=tuple(dict.fromkeys((*job.exclude, *nodes)))) if nodes else job


def off_reservations_at(reservations: Sequence[SlurmReservation]) -> OffAt | None:
    """`off_reservations` from any start time, as the look ahead asks it (first_kept_off; None: none)."""
    return (lambda job, at: off_reservations(job, reservations, at)) if reservations else None


def waits_at_submit(req: dict[str, Any], now: float) -> str:
    """What a job being submitted must wait for before Slurm could start it ("" if nothing): a dependency
    (any: one met already is not worth a round trip to tell), or a begin time more than a minute away."""
    dependency = _text(req, "dependency").strip()
    if dependency:
        return f"its dependency {dependency[:80]}"
    return begins_later(_int(req, "begin_time"), now)


def partition_nodes(partitions: dict[str, tuple[str, ...]] | None, name: str | None
                    ) -> tuple[tuple[str, ...] | None, str]:
    """The nodes of the job's partition as Slurm lists them -> (nodes, "") or (None, why placer cannot
    honour it). Several partitions (`-p a,b`) are Slurm's to choose between. No name (an older hook that
    does not send the default partition) is the only partition of a cluster that has one."""
    if not name and partitions is not None and len(partitions) == 1:
        name = next(iter(partitions))
    if not name:
        return None, "the job's partition is not known (the hook sends the default one)"
    if "," in name:
        return None, f"several partitions ({name}) are left to Slurm"
    if partitions is None:
        return None, "Slurm did not say which nodes each partition holds"
    if name not in partitions:
        return None, f"partition {name} is not one Slurm lists"
    return partitions[name], ""


def _hook_gpus(req: dict[str, Any]) -> tuple[int, int, str]:
    """(GPUs, GPUs per node or 0, "") or (0, 0, why placer leaves the request to Slurm)."""
    per_job, per_node = parse_tres_gpus(req.get("tres_per_job")), parse_tres_gpus(req.get("tres_per_node"))
    per_task, per_socket = parse_tres_gpus(req.get("tres_per_task")), parse_tres_gpus(req.get("tres_per_socket"))
    nodes = _int(req, "min_nodes") or 1
    if per_job or per_node:
        return per_job or per_node * nodes, per_node, ""
    if per_socket:
        return 0, 0, "--gpus-per-socket is left to Slurm"
    if per_task:
        if nodes > 1:  # how Slurm spreads the tasks over nodes decides each node's GPUs: not ours to guess
            return 0, 0, "--gpus-per-task over several nodes is left to Slurm"
        gpus = per_task * max(_int(req, "num_tasks") or 1, 1)
        return gpus, gpus, ""  # one node holds every task
    return 0, 0, "no GPUs requested"


def job_from_hook(req: dict[str, Any], partition_nodes: tuple[str, ...] | None = None,
                  reservations: Sequence[SlurmReservation] = (), now: float = 0.0, cpu_room: CpuRoom | None = None
                  ) -> tuple[JobRequest | None, str]:
    """The hook's request -> (job, "") or (None, why not a GPU job placer can read), kept off Slurm's
    `reservations` as a job started at `now`, and off nodes whose free CPUs (`cpu_room`) are too few."""
    if together := started_together(bool(_text(req, "array_inx")), _int(req, "het_job_offset") is not None):
        return None, together
    if resv := in_reservation(_text(req, "reservation")):
        return None, resv
    if (_int(req, "req_switch") or 0) > 0:  # advice would replace it, or pin nodes over more switches than it allows
        return None, f"its own --switches={_int(req, 'req_switch')} is left to Slurm"
    if _int(req, "contiguous") == 1:  # placer chooses by the fabric, not by consecutive names
        return None, "--contiguous is left to Slurm"
    job, why = _hook_job(req, partition_nodes)
    if job is None:
        return None, why
    return off_short_of_cpus(off_reservations(job, reservations, now), hook_cpus_per_node(req), cpu_room), ""


def hook_cpus_per_node(req: dict[str, Any]) -> int:
    """The fewest CPUs the hook's job gets on each node (plugins/cpus.py), from job_desc's fields."""
    gpus, per_node, _ = _hook_gpus(req)
    nodes = _int(req, "min_nodes") or 1
    return cpus_per_node_needed(nodes, _int(req, "min_cpus"), _int(req, "pn_min_cpus"), _int(req, "cpus_per_task"),
                                _int(req, "ntasks_per_node"), parse_tres_gpus(req.get("cpus_per_tres")),
                                per_node or (gpus if nodes <= 1 else 0))


def _hook_job(req: dict[str, Any], partition_nodes: tuple[str, ...] | None) -> tuple[JobRequest | None, str]:
    gpus, per_node, why = _hook_gpus(req)
    if gpus <= 0:
        return None, why
    nodes = _int(req, "min_nodes") or 1
    exclusive = req.get("shared") == 0
    try:
        exclude = tuple(expand(_text(req, "exc_nodes"))) if _text(req, "exc_nodes") else ()
        required = tuple(expand(_text(req, "req_nodes"))) if _text(req, "req_nodes") else ()
    except HostlistError as exc:
        return None, f"unreadable --exclude or --nodelist: {exc}"
    features, constraint = split_constraint(_text(req, "features"))
    minutes = _int(req, "time_limit")
    model = next((m for k in ("tres_per_job", "tres_per_node", "tres_per_task")
                  if (m := parse_tres_gpu_model(req.get(k)))), None)
    pinned_node = per_node and (nodes > 1 or exclusive or parse_tres_gpus(req.get("tres_per_task")) > 0)
    return JobRequest(job_id=_text(req, "name") or "submit", gpus=gpus,
                      gpus_per_node=per_node if pinned_node else None, partition_nodes=partition_nodes,
                      features=tuple(features), constraint=constraint, gpu_model=model, exclude=exclude,
                      required_nodes=required, partition=_text(req, "partition") or None,
                      qos=_text(req, "qos") or None, exclusive=exclusive,
                      time_limit_s=minutes * 60.0 if minutes else None), ""


def job_from_slurm(j: SlurmJob, partition_nodes: tuple[str, ...] | None = None) -> JobRequest:
    """A pending Slurm job, as it asks to run (its GPUs, nodes, constraints, partition, priority)."""
    multi = j.node_count > 1
    features, constraint = split_constraint(j.features)
    per_node = j.gpus_per_node if multi and j.gpus_per_node else None
    if not j.gpus_per_job and not j.gpus_per_node and j.gpus_per_task:
        per_node = j.gpus  # every task on one node (jobs of several nodes are left to Slurm: not_yet_honoured)
    return JobRequest(job_id=str(j.job_id), gpus=max(j.gpus, 1),
                      gpus_per_node=per_node,
                      priority=j.priority, features=tuple(features), constraint=constraint, gpu_model=j.gpu_model,
                      exclude=j.excluded_nodes, required_nodes=j.required_nodes, partition=j.partition or None,
                      partition_nodes=partition_nodes, qos=j.qos or None, exclusive=j.exclusive,
                      time_limit_s=j.time_limit_s, submit_time=float(j.submit_time))


def placeable_from_slurm(j: SlurmJob, partitions: dict[str, tuple[str, ...]] | None, *, own_pin: bool = False,
                         reservations: Sequence[SlurmReservation] = (), now: float = 0.0,
                         cpu_room: CpuRoom | None = None) -> tuple[JobRequest | None, str]:
    """A pending Slurm job as placer may place it -> (job, "") or (None, why it is left to Slurm unchanged),
    kept off Slurm's `reservations` as a job started at `now`, and off nodes whose free CPUs (`cpu_room`) are
    too few. `own_pin`: the job's required nodes are
    placer's own earlier pin (a held job `placer apply` pinned but did not release before a crash), not the
    user's -w, and are planned afresh."""
    if together := started_together(j.array_job_id > 0, j.het_job_id > 0):
        return None, together
    if resv := in_reservation(j.reservation):
        return None, resv
    if j.gpus <= 0:
        return None, "no GPUs requested"
    if not (j.gpus_per_job or j.gpus_per_node):
        if j.gpus_per_socket:
            return None, "--gpus-per-socket is left to Slurm"
        if j.node_count > 1:
            return None, "--gpus-per-task over several nodes is left to Slurm"
    nodes, why = partition_nodes(partitions, j.partition)
    if nodes is None:
        return None, why
    job = job_from_slurm(j, nodes)
    if own_pin:
        job = replace(job, required_nodes=())
    if unhonoured := job.not_yet_honoured():
        return None, f"{unhonoured} is left to Slurm (placer does not honour it yet)"
    return off_short_of_cpus(off_reservations(job, reservations, now), j.cpus_per_node, cpu_room), ""
