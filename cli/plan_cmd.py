"""`placer plan`: a dry run on an inventory, no Slurm needed."""
from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import click

from placer import PlannerConfig, plan
from placer.jobs import jobs_from_csv, jobs_from_list
from placer.plan_doc import apply_plan_document, plan_document
from placer.types import DegradedLinks
from plugins.requests import off_reservations
from plugins.snapshot import reservations_of
from topology import ClusterState, Problem, RequestError
from topology.hostlists import HostlistError, compress, expand
from topology.inputs import parse_yaml

from .files import json_text, load_fabric, read_document, read_text, write_output
from .params import FiniteRange
from .report import warn


def load_jobs(path: str) -> list:
    text = read_text(path)
    problems: list[Problem] = []
    if path.lower().endswith(".csv"):
        jobs = jobs_from_csv(text, problems)
    else:
        doc = parse_yaml(text, problems)
        if problems:
            raise RequestError(problems=problems, source=path)
        jobs = jobs_from_list(doc, problems)
    if problems:
        raise RequestError(problems=problems, source=path)
    return jobs


def render_text(doc: dict, explain: bool) -> str:
    rows = [("JOB", "STATUS", "GPUS", "NODES", "LEAVES", "BOUND", "PODS", "BOUND", "COST", "SOLVER")]
    for p in doc["placements"]:
        placed = p["status"] == "placed"
        rows.append((p["job"], p["status"], str(p["gpus"]), compress(p["nodes"]) if placed else "-",
                     str(p["leaves"]) if placed else "-", str(p["leaf_lower_bound"] or "-"),
                     str(p["pods"]) if placed else "-", str(p["pod_lower_bound"] or "-"),
                     f"{p['cost']:,}" if placed else "-", p["solver"] or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for p in doc["placements"]:
        if p["status"] != "placed" or explain:
            out.append(f"{p['job']}: {p['reason']}")
        if explain and p.get("explain"):
            e = p["explain"]
            for alt in e.get("alternatives", []):
                out.append(f"    considered: {', '.join(f'{k} {v}' for k, v in alt.items())}")
            if "cost_terms" in e:
                out.append("    cost terms: " + ", ".join(f"{k} {v}" for k, v in e["cost_terms"].items()))
    s = doc["summary"]
    out.append(f"{s['placed']} of {s['jobs']} jobs placed ({s['gpus_placed']:,} GPUs), {s['pending']} pending, "
               f"{s['unplaceable']} unplaceable; multi-node jobs at the leaf lower bound: "
               f"{s['at_leaf_lower_bound']} of {s['multi_node_jobs']}; {s['elapsed_s']} s")
    return "\n".join(out) + "\n"


@click.command("plan")
@click.option("--inventory", required=True, help="Inventory YAML, or preset:NAME.")
@click.option("--jobs", "jobs_path", required=True, type=click.Path(dir_okay=False),
              help="Jobs: YAML/JSON list, or CSV with header job_id,submit_time,duration,gpus.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="An earlier placer.plan/v1 document: its placed jobs occupy their GPUs.")
@click.option("--down", "down", metavar="HOSTLIST", help="Nodes to treat as down for this plan.")
@click.option("--time-limit-s", type=FiniteRange(min=0.001), default=0.05, show_default=True,
              help="CP-SAT time limit per job.")
@click.option("--batch-time-limit-s", type=FiniteRange(min=0), default=10.0, show_default=True,
              help="Time for the whole queue; later jobs get the greedy answer (said per job).")
@click.option("--solver", type=click.Choice(["cpsat", "greedy"]), default="cpsat", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="CP-SAT workers.")
@click.option("--seed", type=int, default=0, show_default=True, help="CP-SAT random seed.")
@click.option("--spares-per-su", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep this many whole nodes per scalable unit free as hot spares (for `placer replace`).")
@click.option("--degraded-links", type=click.Choice(["avoid", "weigh", "ignore"]), default="weigh", show_default=True,
              help="Multi-node jobs and nodes behind a slower or narrower cable (the inventory's degraded_links): "
                   "never use them, use them last at equal cost, or take no notice.")
@click.option("--explain", is_flag=True, help="Say why: excluded nodes counted, alternatives and their cost.")
@click.option("--dump-models", type=click.Path(file_okay=False), help="Write each CP-SAT model here (text proto).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output", help="Write the plan here (default: stdout).")
def plan_cmd(inventory: str, jobs_path: str, state_path: str | None, down: str | None, time_limit_s: float,
             batch_time_limit_s: float, solver: str, workers: int, seed: int, spares_per_su: int,
             degraded_links: str, explain: bool,
             dump_models: str | None, fmt: str, output: str | None) -> None:
    """Place jobs on a fabric (dry run) and say where each goes and why.

    \b
    Examples:
      placer plan --inventory inv.yaml --jobs jobs.yaml --explain
      placer slurm snapshot --inventory inv.yaml -o now.json     # what runs now, then:
      placer plan --inventory inv.yaml --state now.json --jobs jobs.yaml --format json -o plan.json
    """
    fabric, warnings = load_fabric(inventory)
    warn(warnings, inventory)
    jobs = load_jobs(jobs_path)
    state = ClusterState(fabric)
    if state_path:
        doc = read_document(state_path, "json")
        apply_plan_document(fabric, state, doc, state_path)
        resv, now = reservations_of(doc, state_path), time.time()  # a snapshot's: kept off, as apply would
        jobs = [off_reservations(j, resv, now) for j in jobs] if resv else jobs
    if down:
        try:
            names = expand(down)
        except HostlistError as exc:
            raise RequestError(f"--down: {exc}") from None
        unknown = [n for n in names if n not in fabric.node_index]
        if unknown:
            raise RequestError(f"--down names nodes not in the fabric: {compress(unknown)}")
        for n in names:
            state.set_usable(fabric.node_index[n], False)
    cfg = PlannerConfig(time_limit_s=time_limit_s, batch_time_limit_s=batch_time_limit_s, num_workers=workers,
                        random_seed=seed, solver="greedy" if solver == "greedy" else "cpsat", explain=explain,
                        dump_models=bool(dump_models), spares_per_su=spares_per_su,
                        degraded_links=cast(DegradedLinks, degraded_links))
    result = plan(fabric, state, jobs, cfg)
    doc = plan_document(fabric, result.placements, result.summary())
    if dump_models:
        Path(dump_models).mkdir(parents=True, exist_ok=True)
        for p in result.placements:
            if p.model_proto:
                write_output(str(Path(dump_models) / f"{p.job}.pbtxt"), p.model_proto)
    write_output(output, json_text(doc, indent=1) + "\n" if fmt == "json" else render_text(doc, explain))
