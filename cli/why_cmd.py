"""`placer why JOBID`: why a pending job has not started (or will not start within its leaf bound)."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from placer.index import FabricIndex, index_for
from placer.jobs import JobRequest
from placer.reserve import node_free_times
from placer.timeline import HoldRule, OffAt, room_for
from placer.types import PlannerConfig
from placer.why import Running, not_startable_yet, why
from plugins.backend import STEER_TAG, HoldClock, PendingDemand, hold_clock_start, ineligible
from plugins.hold_clock_file import load_clock
from plugins.requests import off_reservations, off_reservations_at, placeable_from_slurm
from topology import ClusterState, RequestError

from .cluster_view import ClusterView, cluster_view, running_jobs
from .config import load_config
from .files import json_text
from .plan_cmd import load_jobs


def _live_job(view: ClusterView, job_id: str, now: float,
              clock: HoldClock) -> tuple[JobRequest, list[str], list[Running], str]:
    """The job (its hold counted as apply counts it, `clock`: what apply saw), its own pin, the running
    jobs, and what Slurm waits for before it could start the job."""
    found = [j for j in view.jobs if str(j.job_id) == job_id]
    if not found:
        raise RequestError(f"Slurm lists no job {job_id}")
    j = found[0]
    if j.state != "PENDING":
        raise RequestError(f"job {job_id} is {j.state.lower()}, not pending: nothing to explain")
    j = replace(j, submit_time=hold_clock_start(j, clock, now))
    own_pin = STEER_TAG in j.admin_comment
    job, left = placeable_from_slurm(j, view.partitions, own_pin=own_pin, reservations=view.reservations, now=now,
                                     cpu_room=view.cpu_room)
    if job is None:
        raise RequestError(f"job {job_id} is left to Slurm unchanged: {left}")
    pinned = list(j.required_nodes) if own_pin and not j.held else []
    return job, pinned, running_jobs(view), ineligible(j, now)


def _apply_clock(state_file: str | None) -> HoldClock:
    """What `placer apply` saw of chained jobs (its state file, when the site keeps one); a file that cannot
    be read is said on stderr, and the hold then counts from submission or the begin time."""
    if not state_file:
        return HoldClock()
    try:
        return load_clock(Path(state_file))
    except RequestError as exc:
        click.echo(f"placer: warning: apply's state file not read, holds counted from submission:\n{exc.render()}",
                   err=True)
        return HoldClock()


Others = Callable[[np.ndarray], int]  # room (bool per node) -> what the other pending jobs that could use it ask


def _offline_job(view: ClusterView, jobs_path: str | None, job_id: str,
                 cfg: PlannerConfig) -> tuple[JobRequest, list[Running], Others]:
    """The job, the running jobs, and what the file's other jobs ask for (the pending queue, offline)."""
    if not jobs_path:
        raise click.UsageError("offline (--state), give the pending job in a --jobs file")
    jobs = load_jobs(jobs_path)
    found = [j for j in jobs if j.job_id == job_id]
    if not found:
        raise RequestError(f"{jobs_path} has no job {job_id}")
    others = [j for j in jobs if j.job_id != job_id]
    return found[0], running_jobs(view), _file_demand(index_for(view.fabric), view.state, others, cfg)


def _file_demand(ix: FabricIndex, state: ClusterState, others: list[JobRequest], cfg: PlannerConfig) -> Others:
    """What the other jobs that could use a node of the room ask for (each job's own room: its partition,
    features, GPU model, node size; `room_for`), as live counts only pending jobs whose partition has a node
    there. Worked out only when the idle rule asks (a hold past its floor)."""
    rooms: list[tuple[int, np.ndarray]] = []

    def asking(room: np.ndarray) -> int:
        if not rooms:
            rooms.extend((j.gpus, room_for(ix, state, j, cfg)) for j in others)
        return sum(g for g, mine in rooms if bool((mine & room).any()))
    return asking


@click.command("why")
@click.argument("job_id")
@click.option("--inventory", help="Inventory YAML or preset:NAME [the config's inventory].")
@click.option("--state", "state_path", metavar="SNAPSHOT.json", help="Offline: a `placer slurm snapshot` document "
              "(running jobs with their end times) instead of asking Slurm; the job comes from --jobs.")
@click.option("--jobs", "jobs_path", metavar="FILE", help="Offline: the jobs file holding JOB_ID (YAML or CSV).")
@click.option("--now", "now_s", type=float, help="Offline: the time to explain at (epoch seconds) [now].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The site configuration.")
@click.option("--backend", type=click.Choice(["auto", "slurm-cli", "pyslurm"]), help="How to talk to Slurm.")
@click.option("--slurm-conf", envvar="SLURM_CONF", type=click.Path(dir_okay=False), help="slurm.conf for Slurm's "
              "commands.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def why_cmd(job_id: str, inventory: str | None, state_path: str | None, jobs_path: str | None, now_s: float | None,
            config_path: str | None, backend: str | None, slurm_conf: str | None, fmt: str) -> None:
    """Why JOB_ID is pending: what it needs, the best placement now and its cost, the block within its leaf
    bound that frees soonest and the running jobs that must end first, and what placer's scheduler does
    with it (the hold settings of the site configuration).

    \b
    Examples:
      placer why 4242                                  # live
      placer why big --inventory inv.yaml --state now.json --jobs queue.yaml --format json
    """
    view = cluster_view(inventory, state_path, config_path, backend, slurm_conf)
    site = load_config(config_path)
    pinned: list[str] = []
    waits = ""
    now = now_s if now_s is not None else time.time()
    cfg = site.planner()  # as apply would
    if state_path:
        job, running, queued = _offline_job(view, jobs_path, job_id, cfg)
        job = off_reservations(job, view.reservations, now)  # a snapshot's, as live
    else:
        job, pinned, running, waits = _live_job(view, job_id, now, _apply_clock(site.apply_state_file))
        queued = PendingDemand.of((j for j in view.jobs if str(j.job_id) != job_id), view.fabric, view.partitions,
                                  now).asking
    answer = not_startable_yet(answer_for(index_for(view.fabric), view.state, job, cfg, running, now, site.hold(),
                                          pinned, queued, off_reservations_at(view.reservations)), waits)
    click.echo(json_text(answer, indent=1) if fmt == "json" else _render(answer))


def answer_for(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig,
               running: Sequence[Running], now: float, hold: HoldRule, pinned: Sequence[str] = (),
               queued_others: Others | None = None, off_at: OffAt | None = None) -> dict:
    """`placer why`'s answer from the cluster now (bench/admin.py times this, as the command runs it);
    `queued_others`: what the other pending jobs ask for, `off_at`: what a later start keeps off
    (placer/why.py)."""
    free_at = node_free_times(ix, state, running, now)  # also lets the look ahead skip ends, as apply's
    if cfg.small_jobs_by_end:  # as apply places a small job: by when each node frees (Slurm's EndTimes)
        state.set_ends(free_at.copy(), now)
    return why(ix, state, job, cfg, running, now, hold, pinned, free_at=free_at, queued_others=queued_others,
               off_at=off_at)


def _render(a: dict) -> str:
    out = [a["sentence"]]
    n, need = a["now"], a["needs"]
    out.append(f"  needs: {need['gpus']} GPUs" + (f", at best within {need['leaf_bound']} leaf/leaves"
                                                    if need["leaf_bound"] else ""))
    if n["excluded"]:
        out.append("  nodes it cannot use now: " + ", ".join(f"{k} {v:,}" for k, v in n["excluded"].items()))
    if n["status"] == "placed":
        out.append(f"  best now: {n['nodes']} ({n['leaves']} leaves, cost {n['cost']:,})"
                   + (f", racks {', '.join(n['racks'])}" if n["racks"] else ""))
    wb = a["within_bound"]
    if wb:
        out.append(f"  within its bound: {wb['nodes']} ({wb['leaves']} leaves"
                   + (f", racks {', '.join(wb['racks'])}" if wb["racks"] else "") + f") in {wb['in_s']:,} s, after:")
        out.extend(f"    job {b['job']} on {b['nodes']}, ends in {b['in_s']:,} s" for b in wb["blocked_by"])
    return "\n".join(out)
