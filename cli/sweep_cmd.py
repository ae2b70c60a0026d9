"""`placer simulate --sweep`: each stream replayed under every policy over its waiting knob; a table, a
dominance verdict and a PNG per stream (share at the leaf bound and excess pairs against mean wait)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from placer.sim import SimConfig
from placer.sim.sweep import TAIL, SweepRow, dominates, grid, sweep
from placer.tracegen import scale_to_load
from topology import Fabric, RequestError

from .files import json_text


@dataclass
class Stream:
    trace: str
    jobs: int
    rows: list[SweepRow]
    png: str
    uncovered: dict[str, list[SweepRow]]  # per baseline: its points placer's curve does not cover

    def as_dict(self) -> dict[str, Any]:
        return {"trace": self.trace, "jobs": self.jobs, "png": self.png, "rows": [r.as_dict() for r in self.rows],
                "uncovered": {k: [r.as_dict() for r in v] for k, v in self.uncovered.items()}}


@dataclass(frozen=True)
class SweepArgs:
    knobs: tuple[float, ...]
    workers: int | None
    load: float | None
    limit: int | None
    plot_dir: str
    fmt: str


def parse_knobs(text: str) -> tuple[float, ...]:
    """'0,300,1800' -> (0.0, 300.0, 1800.0); a clear error naming the bad value."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        try:
            v = float(part)
        except ValueError:
            raise RequestError(f"--knobs: {part!r} is not a number of seconds") from None
        if not 0 <= v < 1e9:
            raise RequestError(f"--knobs: {part!r} is not a wait between 0 and 1e9 seconds")
        out.append(v)
    return tuple(sorted(set(out)))


def run_sweep(fabric: Fabric, traces: list[Any], names: list[str], policies: list[str], cfg: SimConfig,
              a: SweepArgs) -> None:
    streams = []
    for name, trace in zip(names, traces):
        jobs = trace.jobs[: a.limit] if a.limit else trace.jobs
        if a.load:
            jobs = scale_to_load(jobs, fabric.total_gpus, a.load)
        rows = sweep(fabric, jobs, grid(policies, a.knobs), cfg, a.workers)
        png = write_sweep_plot(rows, Path(a.plot_dir), Path(name).stem or "stream")
        streams.append(Stream(name, len(jobs), rows, png, _uncovered(rows, policies)))
    if a.fmt == "json":
        click.echo(json_text({"fabric": fabric.name, "knobs_s": list(a.knobs),
                              "streams": [s.as_dict() for s in streams]}, indent=1))
        return
    for s in streams:
        click.echo(f"{s.trace}: {s.jobs:,} jobs on {fabric.name} ({fabric.total_gpus:,} GPUs); plot {s.png}")
        click.echo(render_rows(s.rows))
        for other, left in s.uncovered.items():
            verdict = "yes" if not left else "no, not at " + ", ".join(f"{r.knob:g} s" for r in left)
            click.echo(f"placer's curve above {other}'s (at least its share at the bound, at most its wait): {verdict}")
        click.echo("")


def _uncovered(rows: list[SweepRow], policies: list[str]) -> dict[str, list[SweepRow]]:
    if "placer" not in policies:
        return {}
    return {p: dominates(rows, "placer", p) for p in policies if p != "placer"}


def _seconds(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:,.0f} s"  # None or NaN: not measured (no such job, older run)


def render_rows(rows: list[SweepRow]) -> str:
    head = ["POLICY", "WAIT KNOB", "AT LEAF BOUND", "EXCESS PAIRS", "MEAN WAIT", "UTIL (BUSY)", "P95 WAIT MULTI <1H"]
    body = [[r.policy, f"{r.knob:,.0f} s", f"{r.figures['at_leaf_lower_bound']:.1%}",
             f"{r.figures['excess_cross_leaf_pairs']:.2%}", f"{r.figures['mean_wait_s']:,.0f} s",
             f"{r.figures['utilisation_busy_period']:.1%}", _seconds(r.figures.get(TAIL))]
            for r in rows]
    table = [head, *body]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in table)


def write_sweep_plot(rows: list[SweepRow], directory: Path, stem: str) -> str:
    """Share at the leaf bound (left) and excess cross-leaf pairs (right) against mean wait, one curve
    per policy, each point labelled with its knob."""
    from .plots import plt

    directory.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for policy in dict.fromkeys(r.policy for r in rows):
        mine = sorted((r for r in rows if r.policy == policy), key=lambda r: r.knob)
        wait = [r.figures["mean_wait_s"] for r in mine]
        for ax, key, scale in ((axes[0], "at_leaf_lower_bound", 100), (axes[1], "excess_cross_leaf_pairs", 100)):
            ys = [r.figures[key] * scale for r in mine]
            ax.plot(wait, ys, marker="o", label=policy)
            for r, x, y in zip(mine, wait, ys):
                ax.annotate(f"{r.knob:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes[0].set(xlabel="mean wait (s)", ylabel="multi-node jobs at the leaf bound (%)",
                title=f"{stem}: locality against wait (labels: wait knob, s)")
    axes[1].set(xlabel="mean wait (s)", ylabel="GPU-h-weighted excess cross-leaf pairs (%)",
                title="traffic against wait (lower is better)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    path = directory / f"sweep-{stem}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
