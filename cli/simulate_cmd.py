"""`placer simulate` and `placer trace generate`."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from placer.plan_doc import simulation_document
from placer.sim import (
    DEFAULT_HOLD_FROM_ROOM,
    DEFAULT_HOLD_IDLE_S,
    DEFAULT_HOLD_IDLE_SHARE,
    DEFAULT_HOLD_S,
    DEFAULT_HOLD_SHARE,
    POLICIES,
    SCHEDULER_WORK_LIMIT,
    SimConfig,
    common_busy_window,
    replay_planner,
    simulate,
    utilisation_in,
)
from placer.sim.sweep import DEFAULT_KNOBS
from placer.tracegen import generate_trace, scale_to_load, shape_from_tables
from placer.traces import merge_traces, parse_trace, write_csv_trace
from placer.types import PlannerConfig
from topology import Fabric, Problem, RequestError

from .files import json_text, load_fabric, need_writable, read_text, write_output
from .params import FiniteRange
from .sweep_cmd import SweepArgs, parse_knobs, run_sweep

SUMMARY_COLUMNS = [
    ("policy", "POLICY", "{}"), ("placed", "PLACED", "{:,}"), ("multi_node_jobs", "MULTI", "{:,}"),
    ("at_leaf_lower_bound", "AT LEAF BOUND", "{:.1%}"), ("beyond_bound_by_choice", "OVER BY CHOICE", "{:.1%}"),
    ("mean_leaves_over_bound", "LEAVES OVER", "{:.3f}"),
    ("more_pods_than_needed", "EXTRA PODS", "{:.1%}"), ("excess_cross_leaf_pairs", "EXCESS PAIRS", "{:.2%}"),
    ("mean_wait_s", "MEAN WAIT", "{:,.0f} s"), ("p95_wait_s", "P95 WAIT", "{:,.0f} s"),
    ("short_multi_p95_wait_s", "P95 WAIT MULTI <1H", "{:,.0f} s"),
    ("utilisation_busy_period", "UTIL (BUSY)", "{:.1%}"), ("utilisation", "UTIL", "{:.1%}"),
    ("makespan_s", "MAKESPAN", "{:,.0f} s"),
]


def render_table(summaries: dict[str, dict]) -> str:
    rows = [[h for _, h, _ in SUMMARY_COLUMNS]]
    for name, s in summaries.items():
        row = []
        for key, _, fmt in SUMMARY_COLUMNS:
            v = name if key == "policy" else s.get(key)
            row.append("-" if v is None else fmt.format(v))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows) + "\n"


def load_trace(paths: tuple[str, ...], fmt: str):
    traces = []
    for p in paths:
        files = sorted(Path(p).glob("*.csv")) + sorted(Path(p).glob("*.swf")) if Path(p).is_dir() else [Path(p)]
        for f in files:
            problems: list[Problem] = []
            # (sacct prints users' job names and comments as their bytes: one not UTF-8 is no reason to refuse)
            t = parse_trace(str(f), read_text(str(f), replace_undecodable=True), fmt, problems)
            if problems:
                raise RequestError(problems=problems, source=str(f))
            traces.append((f.stem, t))
    if not traces:
        raise RequestError(f"no trace files in {', '.join(paths)}")
    merged = merge_traces(traces)
    if not merged.jobs:  # nothing to replay is the user's to know, not an empty report
        skipped = ", ".join(f"{n} {why}" for why, n in merged.skipped.items()) or "none skipped"
        raise RequestError(f"the trace holds no job to replay ({skipped}): {', '.join(paths)}")
    return merged


@click.command("simulate")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@click.option("--trace", "traces", required=True, multiple=True,
              help="Trace file(s) or a directory of them (CSV job_id,submit_time,duration,gpus; .swf; sacct).")
@click.option("--trace-format", type=click.Choice(["auto", "csv", "swf", "sacct"]), default="auto", show_default=True)
@click.option("--policy", default="placer,slurm-tree,first-fit", show_default=True,
              help=f"Comma-separated: {', '.join(POLICIES)}.")
@click.option("--backfill", type=click.Choice(["easy", "none"]), default="easy", show_default=True)
@click.option("--bf-depth", type=click.IntRange(min=1), default=SimConfig.bf_depth, show_default=True,
              help="Jobs tried for backfill per pass, every policy (Slurm's bf_max_job_test; 100 until 2026-12-06).")
@click.option("--switches-wait", "switches_wait_s", type=FiniteRange(min=0), default=0, show_default=True,
              help="For the baselines: every multi-node job behaves as if submitted with sbatch "
                   "--switches=<its leaf bound>@<this many seconds> (0: off); the wait counts from the job's first "
                   "evaluation, as Slurm's wait4switch_start. Placer's own scheduler uses --hold.")
@click.option("--hold", "hold_s", type=FiniteRange(min=0), default=DEFAULT_HOLD_S, show_default=True,
              help="Placer's scheduler: a multi-node job waits for a placement within its leaf bound while the "
                   "running jobs' ends say one frees within this many seconds (0: never waits for locality).")
@click.option("--hold-share", type=FiniteRange(min=0, max=10), default=DEFAULT_HOLD_SHARE, show_default=True,
              help="Placer's scheduler: a long job may wait this share of its run time instead of --hold (at most "
                   "a day); 0: --hold for every job.")
@click.option("--hold-from-room/--no-hold-from-room", default=DEFAULT_HOLD_FROM_ROOM, show_default=True,
              help="Placer's scheduler: a job's hold counts from the first time it could start at all (enough "
                   "eligible nodes), not from the first time it fitted by node count.")
@click.option("--hold-idle", "hold_idle_s", type=FiniteRange(min=0), default=DEFAULT_HOLD_IDLE_S, show_default=True,
              help="Placer's scheduler: a hold expected to last longer than this many seconds (and --hold-idle-share "
                   "of the job's run time) is not taken while the free GPUs, less what the rest of the queue asks "
                   "for, would still hold the job (nothing would use the idle room); 86400: every hold is taken.")
@click.option("--hold-idle-share", "hold_idle_share", type=FiniteRange(min=0, max=10), default=DEFAULT_HOLD_IDLE_SHARE,
              show_default=True, help="Placer's scheduler: see --hold-idle.")
@click.option("--reservation-moves", type=click.IntRange(min=0), default=SimConfig.reservation_moves, show_default=True,
              help="Placer's scheduler: moves a pass may make of the head's reserved block (same start, no more "
                   "leaves) for a job of a node or less ending by --hold past that start; replay only.")
@click.option("--small-jobs-by-end/--no-small-jobs-by-end", default=PlannerConfig.small_jobs_by_end, show_default=True,
              help="Placer's policies: a job of one node or less goes where it delays a node's return to whole-free "
                   "the least (trace durations as run times); off: the partly used node with fewest free GPUs.")
@click.option("--sweep", is_flag=True, help="Run every policy over its knob (placer: --hold; baselines: "
              "--switches-wait) with the values of --knobs, each --trace a stream of its own; a table per "
              "stream and a PNG per stream in --plot (default: the current directory).")
@click.option("--knobs", default=",".join(f"{k:g}" for k in DEFAULT_KNOBS), show_default=True,
              help="With --sweep: the waits (seconds) to run each policy with.")
@click.option("--workers", type=click.IntRange(min=1), help="With --sweep: processes to run on (default: CPUs).")
@click.option("--load", type=FiniteRange(min=0.01), help="Rescale arrival times to offer this x the "
              "fabric's GPUs in work (heavy load: 0.9 and up).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N jobs by submit time.")
@click.option("--work-limit", type=FiniteRange(min=0), default=SCHEDULER_WORK_LIMIT, show_default=True,
              help="CP-SAT's limit per job for the placer policy, in its deterministic work units (about 10 ms "
              "at the default here, as `placer apply` runs it): a replay gives the same plan on every run. "
              "0: 10 ms of wall clock instead (faster machines search further; replays differ).")
@click.option("--out", "out_path", help="Write the result (placer.plan/v1 with start/end per job) here.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), help="Write PNG plots here.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def simulate_cmd(inventory: str, traces: tuple[str, ...], trace_format: str, policy: str, backfill: str,  # long: flags
                 bf_depth: int, switches_wait_s: float, hold_s: float, hold_share: float, hold_from_room: bool,
                 hold_idle_s: float, hold_idle_share: float, reservation_moves: int, small_jobs_by_end: bool,
                 sweep: bool, knobs: str, workers: int | None, load: float | None, limit: int | None,
                 work_limit: float, out_path: str | None, plot_dir: str | None, fmt: str) -> None:
    """Replay a job trace under several placement policies with the same scheduler; compare them.

    \b
    Examples:
      placer simulate --inventory preset:superpod --trace jobs.swf --load 0.9 --plot out/
      placer simulate --inventory inv.yaml --trace sacct.txt --policy placer,slurm-tree --out result.json
      placer simulate --inventory preset:superpod --trace a.csv --trace b.csv --sweep --plot out/
    """
    fabric, policies = load_fabric(inventory)[0], parse_policies(policy)
    need_writable(out_path)
    need_writable(plot_dir or ("." if sweep else None), directory=True)
    cfg = SimConfig(backfill=backfill, bf_depth=bf_depth, switches_wait_s=switches_wait_s, hold_s=hold_s,
                    hold_share=hold_share, hold_from_room=hold_from_room, hold_idle_s=hold_idle_s,
                    hold_idle_share=hold_idle_share,
                    reservation_moves=reservation_moves, planner=replay_planner(work_limit or None, small_jobs_by_end))
    if sweep:
        if out_path:
            raise RequestError("--out is for one replay; a sweep prints its rows (--format json) and writes PNGs")
        run_sweep(fabric, [load_trace((t,), trace_format) for t in traces], list(traces), policies, cfg,
                  SweepArgs(parse_knobs(knobs), workers, load, limit, plot_dir or ".", fmt))
        return
    trace = load_trace(traces, trace_format)
    jobs = trace.jobs[:limit] if limit else trace.jobs
    if load:
        jobs = scale_to_load(jobs, fabric.total_gpus, load)
    for why, n in trace.skipped.items():
        click.echo(f"placer: skipped {n:,} trace records: {why}", err=True)
    runs, summaries = _replay_all(fabric, jobs, policies, cfg)
    doc = simulation_document(fabric, {"files": list(traces), "jobs": len(jobs), "skipped": trace.skipped,
                                       "load": load, **_knobs(cfg)}, runs, summaries)
    if out_path:
        write_output(out_path, json_text(doc, None) + "\n")
    _emit(fabric, runs, summaries, doc, plot_dir, fmt)


def _knobs(cfg: SimConfig) -> dict[str, object]:
    """The scheduler's settings a replay's document records."""
    return {"backfill": cfg.backfill, "switches_wait_s": cfg.switches_wait_s, "hold_s": cfg.hold_s,
            "hold_share": cfg.hold_share, "hold_from_room": cfg.hold_from_room, "hold_idle_s": cfg.hold_idle_s,
            "hold_idle_share": cfg.hold_idle_share,
            "reservation_moves": cfg.reservation_moves, "small_jobs_by_end": cfg.planner.small_jobs_by_end}


def _emit(fabric: Fabric, runs: dict, summaries: dict, doc: dict, plot_dir: str | None, fmt: str) -> None:
    """A replay's plots and its table (or JSON) on stdout."""
    if plot_dir:
        from .plots import write_plots

        for path in write_plots(fabric, runs, plot_dir):
            click.echo(f"wrote {path}", err=True)
    if fmt == "json":
        click.echo(json_text({"trace": doc["trace"], "summary": summaries}, indent=1))
    else:
        tr = doc["trace"]
        click.echo(f"{tr['jobs']:,} jobs on {fabric.name} ({fabric.total_gpus:,} GPUs), backfill {tr['backfill']}"
                   + (f", load {tr['load']:g}" if tr["load"] else ""))
        click.echo(render_table(summaries), nl=False)


def parse_policies(text: str) -> list[str]:
    policies = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in policies if p not in POLICIES]
    if bad or not policies:
        raise RequestError(f"unknown policy {', '.join(bad) or '(none)'}; choose from {', '.join(POLICIES)}")
    return policies


def _replay_all(fabric, jobs, policies: list[str], cfg: SimConfig) -> tuple[dict, dict]:
    """Each policy's replay in turn, with a progress bar on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    runs, summaries = {}, {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, disable=not sys.stderr.isatty(), console=None) as bar:
        for name in policies:
            task = bar.add_task(f"{name:<16}", total=len(jobs))

            def advance(n: int, t: TaskID = task) -> None:
                bar.update(t, completed=n)

            recs, summ = simulate(fabric, jobs, name, cfg, progress=advance)
            runs[name], summaries[name] = recs, summ
    t0, t1 = common_busy_window(runs)
    for name in policies:  # one window for all, so the figures compare
        summaries[name]["utilisation_busy_period"] = utilisation_in(fabric, runs[name], t0, t1)
        summaries[name]["busy_period_s"] = t1 - t0
    return runs, summaries


@click.group()
def trace() -> None:
    """Job traces: generate synthetic ones."""


@trace.command("generate")
@click.option("--inventory", required=True, help="The fabric to scale to (inventory YAML or preset:NAME).")
@click.option("--from", "source", type=click.Path(file_okay=False), required=True,
              help="A directory with worker_count_distribution.csv and duration_quantiles.csv "
                   "(e.g. ../shared/data/traces/alibaba-spot-2026).")
@click.option("--jobs", "count", type=click.IntRange(min=1), default=10000, show_default=True)
@click.option("--load", type=FiniteRange(min=0.01), default=0.9, show_default=True,
              help="Offered work as a multiple of the fabric's GPUs.")
@click.option("--max-duration-s", type=FiniteRange(min=1), default=7 * 86400, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", help="CSV trace (default: stdout).")
def trace_generate(inventory: str, source: str, count: int, load: float, max_duration_s: float, seed: int,
                   output: str | None) -> None:
    """A job stream shaped like a published trace, sized to a fabric and an offered load."""
    fabric, _ = load_fabric(inventory)
    d = Path(source)
    try:
        workers = [(int(r["worker_num"]), int(r["jobs"]))
                   for r in csv.DictReader(read_text(str(d / "worker_count_distribution.csv")).splitlines())]
        rows = list(csv.DictReader(read_text(str(d / "duration_quantiles.csv")).splitlines()))
        durations = [(float(r[""]), float(r["duration_seconds"])) for r in rows]
    except (KeyError, ValueError) as exc:
        raise RequestError(f"{source}: unexpected distribution table ({exc})") from None
    shape = shape_from_tables(workers, durations)
    gpn = int(fabric.node_gpus.max())
    jobs = generate_trace(shape, fabric.total_gpus, fabric.n_nodes, gpn, count, load, seed, max_duration_s)
    write_output(output, write_csv_trace(jobs))
