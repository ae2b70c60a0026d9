"""`placer simulate --sweep`: every policy over its own waiting knob, runs spread over a process pool.

The knob is what each policy has for trading wait against locality: placer's hold limit (its scheduler
waits for a placement within the job's leaf bound only while the timeline of job ends says one frees
in time), and for the baselines Slurm's `--switches=<bound>@<wait>` (a blind wait). One run per
(policy, knob value); the result rows carry the four figures issue 18 compares (share of multi-node
jobs at the leaf bound, excess cross-leaf pairs, mean wait, utilisation) and `dominates` says whether
one policy's curve lies above another's.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from topology import Fabric

from ..jobs import JobRequest
from .policies import PLACER_POLICIES
from .simulator import SimConfig, simulate

DEFAULT_KNOBS = (0.0, 300.0, 900.0, 1800.0, 3600.0)
FIGURES = ("at_leaf_lower_bound", "excess_cross_leaf_pairs", "mean_wait_s", "utilisation_busy_period")

_WORK: dict[str, Any] = {}  # the fabric and jobs, set once per worker process (not pickled per run)


@dataclass(frozen=True)
class SweepRow:
    policy: str
    knob: float  # placer: hold limit; baselines: --switches wait (seconds)
    figures: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "knob_s": self.knob, **self.figures}


def _init(fabric: Fabric, jobs: list[JobRequest]) -> None:
    _WORK["fabric"], _WORK["jobs"] = fabric, jobs


def _run(policy: str, knob: float, cfg: SimConfig) -> SweepRow:
    cfg = replace(cfg, hold_s=knob) if policy in PLACER_POLICIES else replace(cfg, switches_wait_s=knob)
    _, summary = simulate(_WORK["fabric"], _WORK["jobs"], policy, cfg)
    return SweepRow(policy, knob, {k: float(summary[k] or 0.0) for k in FIGURES})


def grid(policies: list[str], knobs: tuple[float, ...]) -> list[tuple[str, float]]:
    return [(p, k) for p in policies for k in knobs]


def sweep(fabric: Fabric, jobs: list[JobRequest], tasks: list[tuple[str, float]], cfg: SimConfig,
          workers: int | None = None) -> list[SweepRow]:
    """Every (policy, knob) run of `tasks`, in that order; `workers` processes (default: the CPUs)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    if workers == 1:
        _init(fabric, jobs)
        return [_run(p, k, cfg) for p, k in tasks]
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(fabric, jobs)) as pool:
        futures = [pool.submit(_run, p, k, cfg) for p, k in tasks]
        return [f.result() for f in futures]


def dominates(rows: list[SweepRow], better: str, worse: str) -> list[SweepRow]:
    """The points of `worse` that no point of `better` covers (at least its share at the leaf bound and
    at most its mean wait): empty when `better`'s curve lies above `worse`'s."""
    mine = [r for r in rows if r.policy == better]
    return [w for w in rows if w.policy == worse
            and not any(m.figures["at_leaf_lower_bound"] >= w.figures["at_leaf_lower_bound"]
                        and m.figures["mean_wait_s"] <= w.figures["mean_wait_s"] for m in mine)]
