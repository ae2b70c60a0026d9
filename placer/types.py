"""Planner inputs and results as plain values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["placed", "pending", "unplaceable"]
DegradedLinks = Literal["avoid", "weigh", "ignore"]
Solver = Literal["cpsat", "greedy"]

# The scheduler's CP-SAT (simulate's policy placer, `placer apply`, `placer why`) stops on its own
# deterministic work units per job, not on the wall clock: the same state gives the same answer on every
# run and machine, so replays are reproducible and apply decides as the benchmark did. With a 10 ms wall
# limit one stream's share at the bound moved by 2 points between replays of the same code. 0.003 units
# take about 10 ms here (docs/benchmarks.md); a wall limit stays as a safety net.
SCHEDULER_WORK_LIMIT = 0.003


@dataclass(frozen=True)
class PlannerConfig:
    """Solver knobs; tests pin one worker and a seed."""

    time_limit_s: float = 0.02  # per CP-SAT solve (wall clock)
    # CP-SAT's own deterministic work units per solve; set, a solve stops on it and gives the same answer
    # on every run and machine (replays are reproducible); time_limit_s still caps the wall clock
    cpsat_work_limit: float | None = None
    cpsat_presolve: bool = False
    cpsat_max_leaves: int = 128  # model size cap: the greedy's leaves first, then the likeliest others
    batch_time_limit_s: float = 10.0  # a whole queue; past it, jobs get the greedy answer (said per job)
    num_workers: int = 1
    random_seed: int = 0
    solver: Solver = "cpsat"  # the greedy answer, improved by CP-SAT when it cannot be proven optimal
    explain: bool = False
    dump_models: bool = False  # keep each CP-SAT model (text proto) on its placement, for offline replay
    spares_per_su: int = 0  # whole nodes per scalable unit kept free as hot spares, used only for replacements
    # multi-node jobs and nodes behind a degraded link (topology/links.py): never use them (avoid), use them
    # last at equal cost (weigh), or take no notice (ignore)
    degraded_links: DegradedLinks = "weigh"
    # a job of one node or less goes where it delays a node's return to whole-free the least, when the
    # running jobs' ends and its own run time are known (placer/choose.py end_keys: the simulator and
    # placer apply set them; with none known it changes nothing). On by default since 2026-12-05, with
    # hold_from_room: 22 checks missed against 27, greedy (docs/benchmarks.md, issue 18)
    small_jobs_by_end: bool = True


@dataclass
class Placement:
    job: str
    status: Status
    gpus: int
    nodes: list[str] = field(default_factory=list)  # rank order
    gpu_ids: dict[str, list[int]] = field(default_factory=dict)
    leaves: int = 0
    leaf_lower_bound: int | None = None
    pods: int = 0
    pod_lower_bound: int | None = None
    cost: int | None = None
    cost_terms: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    solver: str = ""
    priority: int = 0
    explain: dict[str, Any] | None = None
    model_proto: str | None = None
    ranks: list[list] | None = None  # rank -> [node, gpu] (3D-parallel jobs)
    rank_traffic: dict[str, float] | None = None  # our rank order's traffic per step
    name_order_traffic: dict[str, float] | None = None  # Slurm's default order on the same nodes
