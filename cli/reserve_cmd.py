"""`placer reserve --gpus N`: where a hero run starts earliest within its bound, what it costs, and the
Slurm reservation that makes it so (`--apply` creates it)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from placer.constraints import parse_constraint
from placer.eligibility import allowed_mask
from placer.engine import alternatives as matching_or
from placer.index import FabricIndex, index_for
from placer.jobs import JobRequest, split_constraint
from placer.reserve import HeroChoice, ReservePlan, hero_size, plan_hero
from placer.validate import validate_reservation
from plugins.backend import SlurmReservation
from plugins.requests import partition_nodes
from plugins.reservations import ReservationSpec, create_reservation, requeue_argv
from plugins.slurm_cli import subprocess_runner
from topology import BackendError, ClusterState, RequestError
from topology.hostlists import HostlistError, compress_ordered, expand

from .cluster_view import ClusterView, cluster_view, running_jobs
from .config import load_config
from .files import json_text
from .params import FiniteRange

WITHIN = {"su": 0, "leaf": 0, "pod": 1, "all": None}


def _level(view: ClusterView, within: str) -> int | None:
    level = WITHIN[within]
    if level is not None and level >= index_for(view.fabric).depth:
        raise RequestError(f"--within {within}: fabric {view.fabric.name} has no such tier")
    return level


def _hero(view: ClusterView, gpus: int, partition: str | None, constraint: str | None, gpu_model: str | None,
          exclude: str | None) -> JobRequest:
    """The hero run as a job, with the constraints it was given (each checked: an unknown partition, a
    constraint placer does not honour or a matching OR is an input error, never a plan that ignores it)."""
    nodes = None
    if partition is not None:
        nodes, why = partition_nodes(view.partitions, partition)
        if nodes is None:
            raise RequestError(f"--partition {partition}: {why}")
    try:
        excluded = tuple(expand(exclude)) if exclude else ()
    except HostlistError as exc:
        raise RequestError(f"--exclude: {exc}") from None
    unknown = [n for n in excluded if n not in view.fabric.node_index]
    if unknown:
        raise RequestError(f"--exclude: not nodes of fabric {view.fabric.name}: {compress_ordered(unknown)}")
    features, rest = split_constraint(constraint or "")
    job = JobRequest("hero", gpus, exclusive=True, features=tuple(features), constraint=rest,
                     gpu_model=gpu_model.lower() if gpu_model else None, exclude=excluded, partition=partition,
                     partition_nodes=nodes)
    if unhonoured := job.not_yet_honoured():
        raise RequestError(f"--constraint: {unhonoured} (placer does not honour it)")
    return job


def _off_reservations(view: ClusterView, hero: JobRequest, duration_s: float,
                      plan: Callable[[JobRequest], list[ReservePlan]]
                      ) -> tuple[JobRequest, list[ReservePlan], list[SlurmReservation]]:
    """`plan`'s plans for the hero kept off each Slurm reservation one of them would overlap (nodes and time,
    from its start for `duration_s`): the hero as kept off, its plans, and the reservations kept off. Slurm
    refuses a reservation on nodes another holds at the same time; when the hero starts is what the plan
    finds, so the plans are made, checked, and made again off the reservations they ran into (each round
    keeps off at least one more: it ends). One kept off is kept off whenever the hero would start (cautious)."""
    resv = [r for r in view.reservations if r.nodes]
    kept: list[SlurmReservation] = []
    for _ in range(len(resv) + 1):
        plans = plan(hero)
        names = [{view.fabric.node_names[n] for n in p.nodes} for p in plans]
        clash = [r for r in resv if r not in kept and any(
            r.start < p.start + duration_s and r.end > p.start and not on.isdisjoint(r.nodes)
            for p, on in zip(plans, names))]
        if not clash:
            return hero, plans, kept
        kept += clash
        hero = replace(hero, exclude=tuple(dict.fromkeys((*hero.exclude, *(n for r in clash for n in r.nodes)))))
    return hero, [], kept


def _choices(ix: FabricIndex, state: ClusterState, hero: JobRequest, gpus_per_node: int | None,
             constrained: bool) -> list[HeroChoice]:
    """Each matching-OR alternative of the hero's --constraint (one choice when it has none), with the
    nodes it allows and its node size: --gpus-per-node, else the most common there (the planner and the
    validator must take the same one; on a fabric of mixed sizes they once disagreed)."""
    c = parse_constraint(hero.constraint)[0] if hero.constraint else None
    out = []
    for alt in matching_or(hero):
        allowed = allowed_mask(ix, hero, alt) if constrained else None
        label = None if alt is None or c is None else c.alternative_text(alt)
        out.append(HeroChoice(label, allowed, gpus_per_node or hero_size(ix, state, allowed)))
    return out


def _nothing_fits(within: str, gpus: int, choices: list[HeroChoice], constrained: bool,
                  kept_off: list[SlurmReservation]) -> RequestError:
    sizes = "- or ".join(str(n) for n in sorted({c.size for c in choices}))
    return RequestError(f"no block of tier {within!r} can ever hold {gpus:,} GPUs of usable {sizes}-GPU nodes"
                        + (" the job may use" if constrained else "")
                        + (f" (kept off Slurm's reservations {', '.join(r.name for r in kept_off)})" if kept_off
                           else ""))


def _row(view: ClusterView, plan: ReservePlan, spec: ReservationSpec, now: float) -> dict[str, Any]:
    f = view.fabric
    return {"block": plan.block, "start": plan.start, "starts_in_s": round(max(0.0, plan.start - now)),
            "nodes": compress_ordered([f.node_names[n] for n in plan.nodes]), "leaves": plan.leaves,
            "leaf_bound": plan.leaf_bound, "idle_gpu_hours": round(plan.idle_gpu_hours, 3),
            "must_end": [{"job": j, "end": e, "in_s": round(e - now)} for j, e in plan.must_end],
            "scontrol": " ".join(spec.argv(now)), "validated": True,
            **({"alternative": plan.alternative} if plan.alternative is not None else {}),
            **({"requeue": [{"job": j, "lost_gpu_hours": round(w, 3)} for j, w in plan.requeue],
                "lost_gpu_hours": round(plan.lost_gpu_hours, 3),
                "scontrol_requeue": " ".join(requeue_argv([j for j, _ in plan.requeue]))} if plan.requeue else {})}


@click.command("reserve")
@click.option("--gpus", type=click.IntRange(min=1), required=True, help="The hero run's GPUs.")
@click.option("--within", type=click.Choice(list(WITHIN)), default="all", show_default=True,
              help="The tier one block of which must hold it: a scalable unit (su/leaf), a pod, or the fabric.")
@click.option("--start-after", "start_after", type=float, metavar="EPOCH", help="Not before this time.")
@click.option("--duration-s", type=FiniteRange(min=60), default=86400.0, show_default=True,
              help="How long the reservation lasts.")
@click.option("--user", "users", default="root", show_default=True, help="Who may run in it (Slurm's Users=).")
@click.option("--name", help="The reservation's name [placer-hero-GPUS].")
@click.option("--alternatives", type=click.IntRange(min=1, max=10), default=3, show_default=True)
@click.option("--gpus-per-node", type=click.IntRange(min=1), help="Nodes of this size [the most common size among "
              "the nodes it may use].")
@click.option("--partition", help="Only nodes of this partition (as Slurm lists them).")
@click.option("--constraint", help="Only nodes with these features (as sbatch -C: a&b, a|b, x&(a|b); [a|b]: "
              "each plan on one alternative).")
@click.option("--gpu-model", help="Only nodes of this GPU model (as the inventory names it).")
@click.option("--exclude", metavar="HOSTLIST", help="Never these nodes.")
@click.option("--apply", "do_apply", is_flag=True, help="Create the first plan's reservation in Slurm.")
@click.option("--inventory", help="Inventory YAML or preset:NAME [the config's inventory].")
@click.option("--state", "state_path", metavar="SNAPSHOT.json", help="Offline: a `placer slurm snapshot` document.")
@click.option("--now", "now_s", type=float, help="Offline: plan as of this time (epoch seconds) [now].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The site configuration.")
@click.option("--backend", type=click.Choice(["auto", "slurm-cli", "pyslurm"]), help="How to talk to Slurm.")
@click.option("--slurm-conf", envvar="SLURM_CONF", type=click.Path(dir_okay=False), help="slurm.conf for Slurm's "
              "commands.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def reserve_cmd(gpus: int, within: str, start_after: float | None, duration_s: float, users: str, name: str | None,
                alternatives: int, gpus_per_node: int | None, partition: str | None, constraint: str | None,
                gpu_model: str | None, exclude: str | None, do_apply: bool, inventory: str | None,
                state_path: str | None, now_s: float | None, config_path: str | None, backend: str | None,
                slurm_conf: str | None, fmt: str) -> None:
    """Plan a hero run: the blocks where one job of --gpus GPUs starts earliest within its leaf bound, the
    GPU-hours left idle while they drain and the running jobs that must end first, and the exact
    `scontrol create reservation` for each; every plan is checked by the placement validator.

    \b
    Examples:
      placer reserve --gpus 16384                       # live: three plans, nothing changed
      placer reserve --gpus 4096 --within pod --user alice --apply
      placer reserve --gpus 32768 --inventory inv.yaml --state now.json --format json
    """
    if do_apply and state_path:
        raise click.UsageError("--apply creates the reservation in Slurm: not with --state (offline)")
    view = cluster_view(inventory, state_path, config_path, backend, slurm_conf)
    now = now_s if now_s is not None else time.time()
    running = running_jobs(view)
    ix, level = index_for(view.fabric), _level(view, within)
    constrained = bool(partition or constraint or gpu_model or exclude)

    def choices(job: JobRequest) -> list[HeroChoice]:
        return _choices(ix, view.state, job, gpus_per_node, constrained or bool(job.exclude))

    hero, plans, kept_off = _off_reservations(
        view, _hero(view, gpus, partition, constraint, gpu_model, exclude), duration_s,
        lambda job: plan_hero(ix, view.state, running, gpus, now, level, start_after, alternatives, choices(job)))
    if not plans:
        raise _nothing_fits(within, gpus, choices(hero), constrained, kept_off)
    rows = []
    for k, plan in enumerate(plans):
        nodes = [view.fabric.node_names[n] for n in plan.nodes]
        bad = validate_reservation(view.fabric, view.state, replace(hero, gpus_per_node=plan.gpus_per_node),
                                   [r.row() for r in running], nodes, plan.start, now, plan.idle_gpu_hours,
                                   plan.requeue)
        if bad:  # never printed as a plan, never applied
            raise BackendError(f"plan {k + 1} refused by the validator (a bug in placer): {'; '.join(bad)}")
        spec = ReservationSpec(name or f"placer-hero-{gpus}", plan.start, duration_s, compress_ordered(nodes), users,
                               ignore_jobs=bool(plan.requeue))
        rows.append(_row(view, plan, spec, now))
    if do_apply and plans[0].requeue:
        raise RequestError("the only plan requeues running jobs: --apply does not; run its commands yourself")
    if do_apply:
        site = load_config(config_path)
        spec = ReservationSpec(name or f"placer-hero-{gpus}", plans[0].start, duration_s, rows[0]["nodes"], users)
        rows[0]["created"] = create_reservation(subprocess_runner(slurm_conf or site.slurm_conf), spec, now)
    doc = {"gpus": gpus, "within": within, "source": view.source, "now": now, "plans": rows,
           "kept_off_reservations": [{"name": r.name, "nodes": compress_ordered(list(r.nodes))} for r in kept_off]}
    click.echo(json_text(doc, indent=1) if fmt == "json" else _render(doc))


def _render(doc: dict[str, Any]) -> str:
    out = [f"hero run of {doc['gpus']:,} GPUs within {doc['within']} ({doc['source']}): {len(doc['plans'])} plan(s), "
           f"earliest start first"]
    for k, r in enumerate(doc["plans"], 1):
        when = "now" if r["starts_in_s"] == 0 else f"in {r['starts_in_s']:,} s"
        on = f" (-C {r['alternative']})" if "alternative" in r else ""
        out.append(f"{k}. {r['block']}{on}: starts {when} on {r['leaves']} leaves (bound {r['leaf_bound']}), "
                   f"{r['nodes']}; idle while draining at most {r['idle_gpu_hours']:,.1f} GPU-h; "
                   f"{len(r['must_end'])} running job(s) must end first"
                   + (f" (last: {r['must_end'][-1]['job']} in {r['must_end'][-1]['in_s']:,} s)" if r["must_end"]
                      else ""))
        if "requeue" in r:
            out[-1] = (f"{k}. {r['block']}{on}: starts {when} on {r['leaves']} leaves (bound {r['leaf_bound']}), "
                       f"{r['nodes']}, by requeuing {len(r['requeue'])} running job(s): {r['lost_gpu_hours']:,.1f} "
                       f"GPU-h of their work lost (not done by --apply)")
            out.append(f"   {r['scontrol_requeue']}")
        out.append(f"   {r['scontrol']}")
        if "created" in r:
            out.append(f"   applied: {r['created']}")
    if doc["kept_off_reservations"]:
        out.append("Kept off Slurm's reservations the plans would overlap: "
                   + "; ".join(f"{r['name']} {r['nodes']}" for r in doc["kept_off_reservations"]))
    out.append("Slurm keeps every job that would still run at the start time off these nodes (the drain); jobs "
               "ending before it backfill there.")
    return "\n".join(out)
