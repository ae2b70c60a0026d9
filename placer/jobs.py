"""Job requests: what a job asks for, parsed from plain data with every problem named."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topology import Problem
from topology.hostlists import HostlistError, expand
from topology.inputs import clean_text

from .constraints import parse_constraint


@dataclass(frozen=True)
class JobRequest:
    """One job, with every constraint Slurm holds on it (translators: placer/jobs.py for job files and
    trace rows, plugins/requests.py for the hook's job description and squeue / pyslurm jobs).

    `gpus` is the total; a multi-node job takes ceil(gpus / gpus_per_node) whole nodes (`multi_node`).
    """

    job_id: str
    gpus: int
    gpus_per_node: int | None = None  # given (or implied by `nodes`): multi-node jobs use nodes of this size
    priority: int = 0
    max_switches: int | None = None  # like sbatch --switches: at most this many leaves
    features: tuple[str, ...] = ()  # every node has all of these (the `&` terms of --constraint)
    constraint: str | None = None  # sbatch --constraint as given, when it has more than `&` terms
    gpu_model: str | None = None  # like sbatch --gpus=h100:16
    exclude: tuple[str, ...] = ()  # sbatch --exclude
    required_nodes: tuple[str, ...] = ()  # sbatch --nodelist (-w): the job must run on all of them
    partition: str | None = None
    partition_nodes: tuple[str, ...] | None = None  # the partition's nodes (None: not known, every node)
    qos: str | None = None
    exclusive: bool = False
    time_limit_s: float | None = None  # sbatch --time
    submit_time: float | None = None
    duration: float | None = None
    tp: int | None = None  # 3D parallelism (tp x pp x dp = gpus): the placement then comes with a rank order
    pp: int | None = None
    dp: int | None = None
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # traffic per edge: tp, pp, dp
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # nodes kept off now beside `exclude`, per node of the fabric (True: kept off): what a mask says faster
    # than thousands of names (nodes with too few CPUs left, plugins/cpus.py); a look ahead keeps off only
    # those the timeline frees nothing on (placer/timeline.py kept_off_ahead); None: none
    off_mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def expected_run_s(self) -> float | None:
        """How long the job is expected to run: its trace duration in a replay, else its time limit."""
        return self.duration or self.time_limit_s or None

    @property
    def parallel(self) -> bool:
        return any(v is not None for v in (self.tp, self.pp, self.dp))

    def multi_node(self, node_gpus: int) -> bool:
        """The rule for whole-node jobs: exclusive, larger than one node of this size, or asking more GPUs
        than its own GPUs per node. Such a job takes whole nodes of exactly `node_gpus` GPUs."""
        return self.exclusive or self.gpus > node_gpus or (
            self.gpus_per_node is not None and self.gpus > self.gpus_per_node)

    def nodes_needed(self, node_gpus: int) -> int:
        """Whole nodes of `node_gpus` GPUs for a multi-node job; 1 otherwise."""
        return math.ceil(self.gpus / node_gpus) if self.multi_node(node_gpus) else 1

    def not_yet_honoured(self) -> str | None:
        """Constraints the job carries that the planner does not honour yet (None: it honours them all).
        A caller that meets one leaves the job to Slurm unchanged rather than place it wrongly."""
        if self.required_nodes:
            return f"--nodelist {','.join(self.required_nodes[:3])}{'…' if len(self.required_nodes) > 3 else ''}"
        if self.constraint:
            _, why = parse_constraint(self.constraint)
            if why:
                return f"--constraint {self.constraint!r} ({why})"
        return None


_KEYS = {"job_id", "id", "gpus", "nodes", "gpus_per_node", "priority", "max_switches", "switches", "features",
         "constraint", "gpu_model", "exclude", "nodelist", "partition", "qos", "time_limit_s", "exclusive",
         "submit_time", "duration", "tp", "pp", "dp", "weights"}


# the largest count or time a job file or trace may give: counts fit Slurm's 32-bit fields, times (seconds)
# stay well inside what a float holds exactly
MAX_JOB_COUNT = 2**31 - 1
MAX_JOB_SECONDS = 1e12


def _num(v: Any, path: str, problems: list[Problem], *, line: int | None, minimum: int = 0,
         allow_float: bool = False) -> float | int | None:
    maximum = MAX_JOB_SECONDS if allow_float else MAX_JOB_COUNT
    if v is None or v == "":
        return None
    try:
        x = float(v) if allow_float else int(str(v).strip()) if not isinstance(v, int) else v
    except (TypeError, ValueError):
        kind = "number" if allow_float else "whole number"
        problems.append(Problem(path, f"expected a {kind}, got {v!r}", line=line))
        return None
    if isinstance(v, bool) or (not allow_float and isinstance(v, float)) or not (minimum <= x <= maximum):
        kind = "number" if allow_float else "whole number"  # NaN and infinities fail the range too
        problems.append(Problem(path, f"must be a {kind} >= {minimum} and <= {maximum:,.0f}, got {v!r}", line=line))
        return None
    return x


def _int_or_none(x: float | int | None) -> int | None:
    return None if x is None else int(x)


def job_from_mapping(d: dict[str, Any], path: str, problems: list[Problem], line: int | None = None,
                     strict_keys: bool = True) -> JobRequest | None:
    """One job from a mapping (YAML/JSON entry, CSV or trace row): the translator for job files and traces.
    Appends problems and returns None when unusable."""
    before = len(problems)
    if strict_keys:
        for k in d:
            if k not in _KEYS:
                problems.append(Problem(f"{path}.{k}", f"unknown job field {k!r} (known: {', '.join(sorted(_KEYS))})",
                                        line=line))
    jid = d.get("job_id", d.get("id"))
    if jid is None or str(jid).strip() == "":
        problems.append(Problem(f"{path}.job_id", "a job needs a job_id", line=line))
        return None
    jid = str(jid).strip()
    path = f"{path}({jid})"

    def num(key: str, minimum: int = 0, allow_float: bool = False) -> Any:
        return _num(d.get(key), f"{path}.{key}", problems, line=line, minimum=minimum, allow_float=allow_float)

    gpus, gpn = _size(d, path, problems, line, before)
    features, constraint = _features(d, path, problems, line)
    model = d.get("gpu_model")
    if model is not None and not isinstance(model, str):
        problems.append(Problem(f"{path}.gpu_model", f"expected a GPU model name, got {model!r}", line=line))
        model = None
    tp, pp, dp = (_int_or_none(num(k, minimum=1)) for k in ("tp", "pp", "dp"))
    weights = _weights(d, path, problems, line, gpus, tp, pp, dp)
    common = dict(priority=num("priority", minimum=-(2**31)) or 0,
                  max_switches=_num(d.get("max_switches", d.get("switches")), f"{path}.max_switches", problems,
                                    line=line, minimum=1),
                  exclude=tuple(_hostlist(d, "exclude", path, problems, line)),
                  required_nodes=tuple(_hostlist(d, "nodelist", path, problems, line)),
                  partition=str(d["partition"]).strip() or None if d.get("partition") is not None else None,
                  qos=str(d["qos"]).strip() or None if d.get("qos") is not None else None,
                  time_limit_s=num("time_limit_s", allow_float=True), submit_time=num("submit_time", allow_float=True),
                  duration=num("duration", allow_float=True))
    if len(problems) > before or gpus is None:
        return None
    return JobRequest(job_id=jid, gpus=int(gpus), gpus_per_node=int(gpn) if gpn else None,
                      features=features, constraint=constraint, gpu_model=model.strip().lower() if model else None,
                      exclusive=_flag(d.get("exclusive", False)), tp=tp, pp=pp, dp=dp, weights=weights, **common)


def _size(d: dict[str, Any], path: str, problems: list[Problem], line: int | None, before: int
          ) -> tuple[int | None, int | None]:
    """(gpus, gpus_per_node) from gpus, nodes and gpus_per_node, any two of which imply the third."""
    gpus = _num(d.get("gpus"), f"{path}.gpus", problems, line=line, minimum=1)
    nodes = _num(d.get("nodes"), f"{path}.nodes", problems, line=line, minimum=1)
    gpn = _num(d.get("gpus_per_node"), f"{path}.gpus_per_node", problems, line=line, minimum=1)
    if nodes is not None and gpn is not None:
        if gpus is not None and gpus != nodes * gpn:
            problems.append(Problem(f"{path}.gpus", f"gpus={gpus} contradicts nodes={nodes} x gpus_per_node={gpn}",
                                    line=line))
        gpus = nodes * gpn
    elif nodes is not None and gpus is not None:
        if gpus % nodes:
            problems.append(Problem(f"{path}.nodes", f"{gpus} GPUs do not split evenly over {nodes} nodes", line=line))
        else:
            gpn = gpus // nodes
    elif nodes is not None:
        problems.append(Problem(f"{path}.gpus", "nodes given without gpus or gpus_per_node", line=line))
    elif gpus is not None and gpn is not None and gpus % gpn:
        problems.append(Problem(f"{path}.gpus", f"{gpus} GPUs are not a whole number of nodes of {gpn} "
                                                f"(gpus_per_node)", line=line))
    if gpus is None and len(problems) == before:
        problems.append(Problem(f"{path}.gpus", "a job needs gpus (or nodes and gpus_per_node)", line=line))
    return _int_or_none(gpus), _int_or_none(gpn)


def _features(d: dict[str, Any], path: str, problems: list[Problem], line: int | None
              ) -> tuple[tuple[str, ...], str | None]:
    raw = d.get("features", d.get("constraint")) or []
    constraint = None
    if isinstance(raw, str):
        raw, constraint = split_constraint(raw)
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        problems.append(Problem(f"{path}.features", f"expected feature names, got {raw!r}", line=line))
        raw = []
    return tuple(f.strip() for f in raw), constraint


def _hostlist(d: dict[str, Any], key: str, path: str, problems: list[Problem], line: int | None) -> list[str]:
    raw = d.get(key) or []
    out: list[str] = []
    for part in (raw if isinstance(raw, list) else [raw]):
        if not isinstance(part, str):  # YAML's numbers and constants are never turned into names
            problems.append(Problem(f"{path}.{key}", f"expected a hostlist string, got {part!r:.60}", line=line))
            continue
        try:
            out.extend(expand(part))
        except HostlistError as exc:
            problems.append(Problem(f"{path}.{key}", str(exc), line=line))
    return out


def _flag(v: Any) -> bool:
    return v.strip().lower() in ("1", "true", "yes") if isinstance(v, str) else bool(v)


def _weights(d: dict[str, Any], path: str, problems: list[Problem], line: int | None, gpus: int | None,
             tp: int | None, pp: int | None, dp: int | None) -> tuple[float, float, float]:
    """Traffic weights of a tp x pp x dp job, whose product must be its GPU count."""
    if not any(v is not None for v in (tp, pp, dp)) or gpus is None:
        return (1.0, 1.0, 1.0)
    prod = (tp or 1) * (pp or 1) * (dp or 1)
    if prod != gpus:
        problems.append(Problem(f"{path}.tp", f"tp x pp x dp = {tp or 1} x {pp or 1} x {dp or 1} = {prod}, "
                                              f"but the job asks for {gpus} GPUs", line=line))
    w = d.get("weights") or {}
    if not isinstance(w, dict) or not all(k in ("tp", "pp", "dp") for k in w) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in w.values()):
        problems.append(Problem(f"{path}.weights", f"expected {{tp: W, pp: W, dp: W}} (numbers >= 0), got {w!r}",
                                line=line))
        return (1.0, 1.0, 1.0)
    return (float(w.get("tp", 1.0)), float(w.get("pp", 1.0)), float(w.get("dp", 1.0)))


def split_constraint(text: str) -> tuple[list[str], str | None]:
    """sbatch --constraint: plain `a&b` (or `a,b`) terms become features every node must have; anything
    more (`a|b`, `[a|b]`, counts, parentheses) is kept whole as the job's `constraint`."""
    text = text.strip()
    if any(c in text for c in "|[]()*"):
        return [], text
    return [f for f in text.replace("&", ",").split(",") if f.strip()], None


def jobs_from_list(items: Any, problems: list[Problem]) -> list[JobRequest]:
    """Jobs from a parsed YAML/JSON document: a list of mappings (or {"jobs": [...]})."""
    if isinstance(items, dict) and "jobs" in items:
        items = items["jobs"]
    if not isinstance(items, list):
        problems.append(Problem("", f"a jobs file is a list of jobs, got {type(items).__name__}"))
        return []
    jobs = []
    for i, d in enumerate(items):
        if not isinstance(d, dict):
            problems.append(Problem(f"[{i}]", f"expected a mapping for a job, got {d!r}"))
            continue
        j = job_from_mapping(d, f"[{i}]", problems)
        if j is not None:
            jobs.append(j)
    _check_unique(jobs, problems)
    return jobs


def jobs_from_csv(text: str, problems: list[Problem]) -> list[JobRequest]:
    """CSV with header `job_id,submit_time,duration,gpus` (more columns allowed, ignored unless known)."""
    reader = csv.reader(io.StringIO(clean_text(text)))
    try:
        header = next(reader)
    except StopIteration:
        problems.append(Problem("", "empty CSV: expected a header job_id,submit_time,duration,gpus", line=1))
        return []
    header = [h.strip().lower() for h in header]
    missing = [c for c in ("job_id", "gpus") if c not in header]
    if missing:
        problems.append(Problem("header", f"CSV header lacks {', '.join(missing)} (expected "
                                          f"job_id,submit_time,duration,gpus)", line=1))
        return []
    jobs = []
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            problems.append(Problem("", f"expected {len(header)} columns, got {len(row)}", line=line))
            continue
        d = {k: v for k, v in zip(header, row) if k in _KEYS}
        j = job_from_mapping(d, "row", problems, line=line, strict_keys=False)
        if j is not None:
            jobs.append(j)
    _check_unique(jobs, problems)
    return jobs


def _check_unique(jobs: Iterable[JobRequest], problems: list[Problem]) -> None:
    seen: set[str] = set()
    for j in jobs:
        if j.job_id in seen:
            problems.append(Problem(f"job {j.job_id}", "duplicate job_id"))
        seen.add(j.job_id)
