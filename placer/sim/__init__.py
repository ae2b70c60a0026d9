"""Trace replay (`placer simulate`): one scheduler for every placement policy, one place for each part.

  events.py     the clock: arrivals, job ends, timer wake-ups
  cluster.py    the simulated cluster's bookkeeping (free GPUs, when nodes free, running jobs)
  scheduler.py  when jobs start: FCFS with EASY backfill (or none), Slurm's --switches waiting,
                placer's hold (a look at the running jobs' ends); a new scheduler implements
                `Scheduler` and is chosen in `make_scheduler`
  policies.py   where jobs go: placer (CP-SAT or greedy), Slurm's tree (22.05, 24.05), best-fit, first-fit
  sweep.py      every policy over its waiting knob, over a process pool
  metrics.py    what a replay measures
  simulator.py  the event loop, `simulate()`
"""
from ..timeline import (
    DEFAULT_HOLD_FROM_ROOM,
    DEFAULT_HOLD_IDLE_S,
    DEFAULT_HOLD_IDLE_SHARE,
    DEFAULT_HOLD_S,
    DEFAULT_HOLD_SHARE,
)
from ..types import SCHEDULER_WORK_LIMIT
from .metrics import common_busy_window, multi_node_placed, summarize_records, utilisation_in
from .policies import POLICIES
from .records import Alloc, JobRecord
from .simulator import SimConfig, Simulator, replay_planner, simulate

__all__ = ["DEFAULT_HOLD_FROM_ROOM", "DEFAULT_HOLD_IDLE_S", "DEFAULT_HOLD_IDLE_SHARE", "DEFAULT_HOLD_S",
           "DEFAULT_HOLD_SHARE", "POLICIES", "SCHEDULER_WORK_LIMIT", "Alloc", "JobRecord", "SimConfig", "Simulator",
           "common_busy_window", "multi_node_placed", "replay_planner", "simulate", "summarize_records",
           "utilisation_in"]
