"""The site configuration, `/etc/placer/placer.yaml`: one file for serve, apply and the hook installer.

Where it is: `--config FILE`, else `PLACER_CONFIG`, else /etc/placer/placer.yaml when it exists (an absent
default file means every default; an absent file that was named is an error). Precedence for each
setting: command-line flag > environment > this file > default. Every key is checked, and every bad
key reported at once (exit 2). The keys are documented in examples/placer.yaml.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from placer.timeline import (
    DEFAULT_HOLD_FROM_ROOM,
    DEFAULT_HOLD_IDLE_S,
    DEFAULT_HOLD_IDLE_SHARE,
    DEFAULT_HOLD_MAX_S,
    DEFAULT_HOLD_S,
    DEFAULT_HOLD_SHARE,
    HoldRule,
)
from placer.types import SCHEDULER_WORK_LIMIT, DegradedLinks, PlannerConfig, Solver
from plugins.serve import ServeConfig
from topology import Problem, RequestError
from topology.inputs import exists

from .files import read_document

DEFAULT_CONFIG = Path("/etc/placer/placer.yaml")
Check = Callable[[Any], "str | None"]


def _text(v: Any) -> str | None:
    return "a non-empty text" if not isinstance(v, str) or not v.strip() else None


def _path(v: Any) -> str | None:
    return _text(v) or (None if str(v).startswith("/") else "an absolute path")


def _number(lo: float, hi: float, whole: bool = False) -> Check:
    def check(v: Any) -> str | None:
        kinds = (int,) if whole else (int, float)
        if isinstance(v, bool) or not isinstance(v, kinds) or not (lo <= v <= hi):  # NaN fails the range too
            return f"a {'whole ' if whole else ''}number from {lo:g} to {hi:g}"
        return None
    return check


def _choice(*options: str) -> Check:
    return lambda v: None if v in options else " or ".join(options)


def _names(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(p, str) and p for p in v) else "a list of partition names"


DAY_S = 24 * 3600
# key -> (check, where it goes: "serve.<ServeConfig field>" or a SiteConfig field)
KEYS: dict[str, tuple[Check, str]] = {
    "inventory": (_text, "inventory"),
    "slurm_conf": (_path, "slurm_conf"),
    "backend": (_choice("auto", "slurm-cli", "pyslurm"), "backend"),
    "mode": (_choice("advise", "steer"), "serve.mode"),
    "partitions": (_names, "serve.partitions"),
    "socket": (_path, "serve.socket_path"),
    "socket_group": (_text, "serve.socket_group"),
    "gpu_only": (lambda v: None if isinstance(v, bool) else "true or false", "serve.gpu_only"),
    "opt_out": (_text, "serve.opt_out"),
    "refresh_s": (_number(0.1, 3600), "serve.refresh_s"),
    "node_poll_s": (lambda v: None if v == 0 else _number(0.1, 60)(v), "serve.node_poll_s"),
    "max_wait4switch_s": (_number(0, 7 * DAY_S, whole=True), "serve.max_wait4switch_s"),
    "reservation_ttl_s": (_number(1, 3600), "serve.reservation_ttl_s"),
    "stale_request_s": (_number(0.1, 3600), "serve.stale_request_s"),
    "max_state_age_s": (_number(1, DAY_S), "serve.max_state_age_s"),
    "max_hold_s": (_number(0, 7 * DAY_S), "serve.max_hold_s"),
    "metrics_port": (_number(1, 65535, whole=True), "serve.metrics_port"),
    "hook_budget_s": (_number(0.005, 10), "hook_budget_s"),
    "hook_backoff_s": (_number(0, 3600), "hook_backoff_s"),
    "apply_interval_s": (_number(0.1, 3600), "apply_interval_s"),
    "apply_time_limit_s": (_number(0.001, 60), "apply_time_limit_s"),
    "apply_solver": (_choice("greedy", "cpsat"), "apply_solver"),
    "apply_work_limit": (_number(0, 10), "apply_work_limit"),
    "apply_state_file": (_path, "apply_state_file"),
    "hold_s": (_number(0, 7 * DAY_S), "hold_s"),
    "hold_share": (_number(0, 10), "hold_share"),
    "hold_max_s": (_number(0, 30 * DAY_S), "hold_max_s"),
    "hold_from_room": (lambda v: None if isinstance(v, bool) else "true or false", "hold_from_room"),
    "hold_idle_s": (_number(0, 30 * DAY_S), "hold_idle_s"),
    "hold_idle_share": (_number(0, 10), "hold_idle_share"),
    "degraded_links": (_choice("avoid", "weigh", "ignore"), "degraded_links"),
    "small_jobs_by_end": (lambda v: None if isinstance(v, bool) else "true or false", "small_jobs_by_end"),
}


@dataclass(frozen=True)
class SiteConfig:
    source: str | None = None  # the file read (None: defaults only)
    inventory: str | None = None
    slurm_conf: str | None = None
    backend: str = "auto"
    serve: ServeConfig = field(default_factory=ServeConfig)
    hook_budget_s: float = 0.05  # job_submit.lua's whole budget per submit
    hook_backoff_s: float = 1.0  # how long the hook leaves a daemon alone that did not answer in time
    apply_interval_s: float = 2.0
    apply_time_limit_s: float = 0.05  # the wall clock's cap on one CP-SAT solve (a safety net)
    # the scheduler's chooser (apply, why): the greedy answer improved by CP-SAT, which stops on its own work
    # units (the same answers on any machine, as simulate's policy placer; 0: on apply_time_limit_s only);
    # CP-SAT since 2026-12-05, when it missed fewer of issue 18's checks than the greedy (docs/benchmarks.md)
    apply_solver: Solver = "cpsat"
    apply_work_limit: float = SCHEDULER_WORK_LIMIT
    # where `placer apply` keeps held jobs' hold clocks between processes (plugins/hold_clock_file.py); None:
    # in memory only (a cron --once or a restarted watch counts a chained job's hold from submission)
    apply_state_file: str | None = None
    # placer's scheduler: how long a multi-node job may wait for its leaf bound (placer.timeline.HoldRule)
    hold_s: float = DEFAULT_HOLD_S
    hold_share: float = DEFAULT_HOLD_SHARE
    hold_max_s: float = DEFAULT_HOLD_MAX_S
    hold_from_room: bool = DEFAULT_HOLD_FROM_ROOM  # a job with no room now counts its hold from when room comes
    # a hold longer than this and hold_idle_share of the job's time limit is not taken when nothing pending
    # would use the room it leaves idle (hold_idles; at least hold_max_s: every hold is taken)
    hold_idle_s: float = DEFAULT_HOLD_IDLE_S
    hold_idle_share: float = DEFAULT_HOLD_IDLE_SHARE
    degraded_links: DegradedLinks = "weigh"  # multi-node jobs and nodes behind a slow cable
    # placer apply and why: small jobs by Slurm's EndTimes (placer.types.PlannerConfig.small_jobs_by_end)
    small_jobs_by_end: bool = PlannerConfig.small_jobs_by_end

    def hold(self, hold_s: float | None = None) -> HoldRule:
        """Placer's hold as this file sets it (`hold_s` overridden by a command's --hold)."""
        return HoldRule(self.hold_s if hold_s is None else hold_s, self.hold_share, self.hold_max_s,
                        self.hold_from_room, self.hold_idle_s, self.hold_idle_share)

    def planner(self, solver: str | None = None, time_limit_s: float | None = None) -> PlannerConfig:
        """The planner `placer apply` and `placer why` choose with (`solver`, `time_limit_s`: a command's flags)."""
        return PlannerConfig(time_limit_s=self.apply_time_limit_s if time_limit_s is None else time_limit_s,
                             cpsat_work_limit=self.apply_work_limit or None, degraded_links=self.degraded_links,
                             solver="cpsat" if (solver or self.apply_solver) == "cpsat" else "greedy",
                             small_jobs_by_end=self.small_jobs_by_end)

    def need_inventory(self, flag: str | None) -> str:
        """The inventory from the flag, else this file; naming where to put it when neither has one."""
        found = flag or self.inventory
        if not found:
            raise RequestError(f"no inventory: give --inventory, or `inventory:` in {self.source or DEFAULT_CONFIG}")
        return found


def config_path(flag: str | None) -> tuple[Path | None, bool]:
    """(the file to read, whether it was named) from --config, PLACER_CONFIG or the default location."""
    named = flag or os.environ.get("PLACER_CONFIG")
    if named:
        return Path(named), True
    return (DEFAULT_CONFIG, False) if exists(DEFAULT_CONFIG) else (None, False)


def load_config(flag: str | None = None) -> SiteConfig:
    path, named = config_path(flag)
    if path is None:
        return SiteConfig()
    if named and not exists(path):
        raise RequestError(f"config file {path} does not exist (from --config or PLACER_CONFIG)")
    doc = read_document(str(path)) or {}
    if not isinstance(doc, dict):
        raise RequestError(problems=[Problem("", "the config file is a mapping of settings")], source=str(path))
    problems: list[Problem] = []
    site: dict[str, Any] = {}
    serve: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in KEYS:
            problems.append(Problem(str(key), f"unknown setting (known: {', '.join(sorted(KEYS))})"))
            continue
        check, dest = KEYS[key]
        want = check(value)
        if want:
            problems.append(Problem(str(key), f"expected {want}, got {value!r:.80}"))
        elif dest.startswith("serve."):
            serve[dest[6:]] = tuple(value) if key == "partitions" else Path(value) if key == "socket" else value
        else:
            site[dest] = value
    if problems:
        raise RequestError(problems=problems, source=str(path))
    return replace(SiteConfig(source=str(path), **site), serve=replace(ServeConfig(), **serve))
