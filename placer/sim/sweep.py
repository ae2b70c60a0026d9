"""`placer simulate --sweep`: every policy over its own waiting knob, runs spread over a process pool.

The knob is what each policy has for trading wait against locality: placer's hold limit (its scheduler
waits for a placement within the job's leaf bound only while the timeline of job ends says one frees
in time), and for the baselines Slurm's `--switches=<bound>@<wait>` (a blind wait). One run per
(policy, knob value); the result rows carry the four figures issue 18 compares (share of multi-node
jobs at the leaf bound, excess cross-leaf pairs, mean wait, utilisation) and `dominates` says whether
one policy's curve lies above another's. Utilisation is over one window for every run of a stream.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from topology import Fabric

from ..jobs import JobRequest
from .policies import PLACER_POLICIES
from .simulator import SimConfig, simulate

DEFAULT_KNOBS = (0.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)
FIGURES = ("at_leaf_lower_bound", "excess_cross_leaf_pairs", "mean_wait_s", "utilisation_busy_period")
# shown beside FIGURES, compared by no check: what a hold for locality costs short multi-node jobs (NaN: none ran)
TAIL = "short_multi_p95_wait_s"

_WORK: dict[str, Any] = {}  # the fabric and jobs, set once per worker process (not pickled per run)


@dataclass(frozen=True)
class SweepRow:
    policy: str
    knob: float  # placer: hold limit; baselines: --switches wait (seconds)
    figures: dict[str, float]
    # (start, end, GPUs) per placed job: utilisation over one window for all runs of a stream
    usage: np.ndarray | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        # NaN (a figure with nothing to measure) as JSON's null
        figures = {k: None if math.isnan(v) else v for k, v in self.figures.items()}
        return {"policy": self.policy, "knob_s": self.knob, **figures}


def _init(fabric: Fabric, jobs: list[JobRequest]) -> None:
    _WORK["fabric"], _WORK["jobs"] = fabric, jobs


def _run(policy: str, knob: float, cfg: SimConfig) -> SweepRow:
    cfg = replace(cfg, hold_s=knob) if policy in PLACER_POLICIES else replace(cfg, switches_wait_s=knob)
    records, summary = simulate(_WORK["fabric"], _WORK["jobs"], policy, cfg)
    usage = np.asarray([(r.start, r.end, sum(len(ids) for _, ids in r.alloc)) for r in records
                        if r.status == "placed"], dtype=float).reshape(-1, 3)
    figures = {k: float(summary[k] or 0.0) for k in FIGURES}
    figures[TAIL] = nan_if_none(summary[TAIL])
    return SweepRow(policy, knob, figures, usage)


def nan_if_none(v: float | None) -> float:
    return math.nan if v is None else float(v)


def common_window(rows: list[SweepRow], jobs: list[JobRequest], total_gpus: int) -> list[SweepRow]:
    """Utilisation of every run over one window, from the first submit to the latest last start of any
    run (as `placer simulate` compares policies): each run's own busy period would differ in length."""
    t0 = min((j.submit_time or 0.0) for j in jobs)
    t1 = max((float(r.usage[:, 0].max()) for r in rows if r.usage is not None and r.usage.size), default=t0)
    out = []
    for r in rows:
        if r.usage is None or t1 <= t0:
            out.append(r)
            continue
        used = float((np.clip(r.usage[:, 1], t0, t1) - np.clip(r.usage[:, 0], t0, t1)) @ r.usage[:, 2])
        out.append(replace(r, figures={**r.figures, "utilisation_busy_period": used / (total_gpus * (t1 - t0))}))
    return out


def grid(policies: list[str], knobs: tuple[float, ...]) -> list[tuple[str, float]]:
    return [(p, k) for p in policies for k in knobs]


def sweep(fabric: Fabric, jobs: list[JobRequest], tasks: list[tuple[str, float]], cfg: SimConfig,
          workers: int | None = None) -> list[SweepRow]:
    """Every (policy, knob) run of `tasks`, in that order; `workers` processes (default: the CPUs)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    if workers == 1:
        _init(fabric, jobs)
        rows = [_run(p, k, cfg) for p, k in tasks]
    else:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(fabric, jobs)) as pool:
            futures = [pool.submit(_run, p, k, cfg) for p, k in tasks]
            rows = [f.result() for f in futures]
    return common_window(rows, jobs, fabric.total_gpus)


def dominates(rows: list[SweepRow], better: str, worse: str) -> list[SweepRow]:
    """The points of `worse` that no point of `better` covers (at least its share at the leaf bound and
    at most its mean wait): empty when `better`'s curve lies above `worse`'s."""
    mine = [r for r in rows if r.policy == better]
    return [w for w in rows if w.policy == worse
            and not any(m.figures["at_leaf_lower_bound"] >= w.figures["at_leaf_lower_bound"]
                        and m.figures["mean_wait_s"] <= w.figures["mean_wait_s"] for m in mine)]
