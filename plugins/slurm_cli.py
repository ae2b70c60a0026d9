"""Backend over Slurm's command-line tools (`sinfo --json`, `squeue --json`, `scontrol`): the default.

Parsers are pure functions over captured text; the runner that executes commands is injected.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from topology import BackendError, Problem
from topology.hostlists import HostlistError
from topology.inputs import parse_json

from .backend import (
    RUNNING_STATES,
    SlurmJob,
    SlurmNode,
    SlurmReservation,
    SlurmSnapshot,
    expand_nodes,
    node_state_of,
    parse_gpu_idx,
    parse_tres_gpu_model,
    parse_tres_gpus,
)
from .cpus import cpus_per_node_needed

Runner = Callable[[list[str]], str]
DEFAULT_SLURM_CONF = "/etc/slurm/slurm.conf"  # Debian's Slurm looks here when SLURM_CONF is unset
T = TypeVar("T")
log = logging.getLogger(__name__)


# what a Slurm client prints when slurmctld did not answer within MessageTimeout (a busy controller; seen
# on the 2-core lab with 24.11): a query is worth asking once more, a change is not (it may have been made)
CONTROLLER_STALLED = ("Socket timed out", "Unable to contact slurm controller")
# 22.05's `sinfo --json` says it otherwise: exit 0, `"errors": [{"error": "Unspecified error", "errno": -1}]`
# and no node (the lab with slurmctld stopped past MessageTimeout; 24.11 and 26.05 exit 1 with the above)
STALLED_JSON = re.compile(r'"errno"\s*:\s*-1\b')
STALL_RETRY_PAUSE_S = 1.0


def stalled(done: subprocess.CompletedProcess) -> bool:
    """The controller did not answer in time: either shape above (by exit status)."""
    if done.returncode != 0:
        return any(s in (done.stderr or "") for s in CONTROLLER_STALLED)
    return STALLED_JSON.search(done.stdout or "") is not None


def read_only(cmd: list[str]) -> bool:
    """A query that changes nothing in Slurm, so asking it again after a stall is safe."""
    return bool(cmd) and (cmd[0] in ("sinfo", "squeue") or cmd[:2] == ["scontrol", "show"])


def run_command(cmd: list[str], env: dict[str, str] | None = None, timeout_s: float = 30.0,
                missing: str = "is Slurm's client (slurm-client) installed?") -> str:
    """Run one command; failures name the command and its stderr (or what is missing). A query the
    controller did not answer in time is asked once more (logged); a change never is."""
    for attempt in (1, 2):
        try:
            # errors="replace": a job name or comment is whatever bytes its user typed, and Slurm passes them
            # through; one that is not UTF-8 must not stop every read of the queue (it becomes U+FFFD)
            done = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", env=env,
                                  timeout=timeout_s)
        except FileNotFoundError:
            raise BackendError(f"{cmd[0]} not found: {missing}") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"`{' '.join(cmd)}` did not answer within {timeout_s:g} s") from None
        if attempt == 2 or not stalled(done) or not read_only(cmd):
            break
        log.warning("`%s`: slurmctld did not answer in time (%s); asking once more", " ".join(cmd),
                    done.stderr.strip() or "errno -1 in its JSON")
        time.sleep(STALL_RETRY_PAUSE_S)
    if done.returncode != 0:
        raise BackendError(f"`{' '.join(cmd)}` failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    return done.stdout


def subprocess_runner(slurm_conf: str | None = None, timeout_s: float = 30.0) -> Runner:
    """Runs Slurm commands against `slurm_conf` (or the environment's SLURM_CONF)."""
    env = dict(os.environ)
    if slurm_conf:
        if not os.path.isfile(slurm_conf):  # sinfo would otherwise hang looking for a controller
            raise BackendError(f"slurm.conf {slurm_conf} does not exist (from --slurm-conf or SLURM_CONF)")
        env["SLURM_CONF"] = slurm_conf
    if "SLURM_CONF" in env or Path(DEFAULT_SLURM_CONF).exists():
        return lambda cmd: run_command(cmd, env, timeout_s)

    def run(cmd: list[str]) -> str:
        try:
            return run_command(cmd, env, timeout_s)
        except BackendError as exc:  # Slurm's own words are about DNS SRV records: say what is really missing
            raise BackendError(f"{exc}\n(no slurm.conf: {DEFAULT_SLURM_CONF} does not exist and none was given; "
                               "give --slurm-conf, SLURM_CONF or slurm_conf in /etc/placer/placer.yaml, unless "
                               "this cluster is configless)") from None
    return run


def _load(text: str, what: str) -> dict[str, Any]:
    problems: list[Problem] = []
    doc = parse_json(text, problems)
    if problems:
        p = problems[0]
        where = f" at line {p.line}" if p.line else ""
        raise BackendError(f"{what} did not print JSON we can read ({p.path + ': ' if p.path else ''}{p.message}"
                           f"{where})")
    if not isinstance(doc, dict):
        raise BackendError(f"{what} printed {type(doc).__name__}, not an object")
    errors = doc.get("errors") or []
    if errors:
        raise BackendError(f"{what} reported errors: {errors}")
    return doc


def parse_sinfo_json(text: str) -> list[SlurmNode]:
    """`sinfo --json` of every data_parser version: 22.05's flat `nodes` list, or 23.x+'s `sinfo` groups
    (one per state and partition, `{"node": {"state": [...]}, "nodes": {"nodes": [names]}, ...}`).
    A document with no node in either shape is an error, never an empty cluster."""
    doc = _load(text, "sinfo --json")
    if isinstance(doc.get("sinfo"), list):
        out = [node for i, group in enumerate(doc["sinfo"])
               for node in _record(_sinfo_group, group, f"sinfo --json: sinfo[{i}]")]
    elif isinstance(doc.get("nodes"), list):
        out = [_record(_sinfo_node, n, f"sinfo --json: nodes[{i}]") for i, n in enumerate(doc["nodes"])]
    else:
        raise BackendError(f"sinfo --json printed neither `sinfo` groups nor a `nodes` list "
                           f"(keys: {', '.join(sorted(doc)) or 'none'}): an unknown Slurm version?")
    if not out:
        raise BackendError("sinfo --json listed no nodes: refusing to treat the cluster as empty")
    return out


def _state(state: Any, flags: Any = ()) -> str:
    """A node's state: a list of base state and flags (newer Slurm), or a word plus `state_flags`."""
    if isinstance(state, list):
        return node_state_of(str(state[0]) if state else "", [str(f) for f in state[1:]])
    return node_state_of(str(state or ""), [str(f) for f in (flags or [])])


# squeue shows one word per job: the first of these flags the job carries, else its base state (Slurm's
# job_state_string). 22.05's JSON printed that word; 24.11+ print [base, flags...], e.g. a job being
# requeued is ["PENDING", "COMPLETING"] and a cancelled one still on its nodes ["CANCELLED", "COMPLETING"]:
# both are COMPLETING, as in 22.05, and keep their nodes.
JOB_FLAGS_SHOWN = ("COMPLETING", "STAGE_OUT", "CONFIGURING", "RESIZING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                   "SPECIAL_EXIT", "STOPPED", "REVOKED", "RESV_DEL_HOLD", "SIGNALING")


def _job_state(v: Any) -> str:
    if not isinstance(v, list):
        return str(v or "").upper()
    words = [str(w).upper() for w in v]
    return next((f for f in JOB_FLAGS_SHOWN if f in words[1:]), words[0] if words else "")


def _reason(r: Any) -> str:
    return str(r.get("description") or "") if isinstance(r, dict) else str(r or "")


def _features(v: Any) -> tuple[str, ...] | None:
    """`"a,b"` (22.05), or {"total", "active"} (newer): the active features."""
    if isinstance(v, dict):
        v = v.get("active", v.get("total"))
    if v is None:
        return None
    return tuple(f for f in str(v).split(",") if f)


def _gres(v: Any) -> tuple[int | None, str | None]:
    """GPUs configured and their model from `gpu:h100:8` (22.05: a string; newer: {"total": ...})."""
    if isinstance(v, dict):
        v = v.get("total")
    if v is None:
        return None, None
    gpus, model = 0, None
    for part in str(v).split(","):
        m = re.match(r"gpu(?::([A-Za-z][^:(]*))?:(\d{1,9})(?!\d)", part.strip())
        if m:
            gpus += int(m.group(2))
            model = model or m.group(1)
        elif re.match(r"gpu:.*\d{10}", part.strip()):  # a count we will not read is not zero GPUs
            raise ValueError(f"unreadable GPU count in gres {part.strip()[:60]!r}")
    return gpus, model


def _name(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"a node name is a string, got {v!r:.40}")
    return v


def _busy(state: Any) -> tuple[bool, bool]:
    """(some job runs on the node, every CPU of it is taken): Slurm's base state (a word, or the first of a
    list) is ALLOCATED or MIXED, and ALLOCATED."""
    base = str((state[0] if isinstance(state, list) and state else state) or "").upper()
    return base in ("ALLOCATED", "MIXED"), base == "ALLOCATED"


def _sinfo_node(n: dict[str, Any]) -> SlurmNode:
    gpus, model = _gres(n.get("gres"))
    parts = n.get("partitions")
    return SlurmNode(_name(n.get("name")), _state(n.get("state", ""), n.get("state_flags")), _reason(n.get("reason")),
                     _features(n.get("active_features", n.get("features"))), gpus, model,
                     tuple(str(p) for p in parts) if isinstance(parts, list) else None, *_busy(n.get("state")),
                     _count(n.get("cpus")))


def _count(v: Any) -> int | None:
    """A positive count Slurm gave (a number, or newer Slurm's {"set", "number"}); None when not given."""
    if v is None or isinstance(v, bool) or (isinstance(v, dict) and not v.get("set", True)):
        return None
    n = _num(v)
    return n if n > 0 else None


def _group_cpus(cpus: Any) -> int | None:
    """Each node's CPUs in a 23.x+ sinfo group (its `total` and `allocated` are the group's sums): known
    when the group's minimum and maximum agree."""
    if not isinstance(cpus, dict):
        return None
    low, high = _count(cpus.get("minimum")), _count(cpus.get("maximum"))
    return low if low == high else None


def _sinfo_group(g: dict[str, Any]) -> list[SlurmNode]:
    node, nodes = g.get("node") or {}, g.get("nodes") or {}
    if not isinstance(node, dict) or not isinstance(nodes, dict) or not isinstance(nodes.get("nodes", []), list):
        raise ValueError("expected `node` {state} and `nodes` {nodes: [names]}")
    state = _state(node.get("state", ""))
    gpus, model = _gres(g.get("gres"))
    features, reason = _features(g.get("features")), _reason(g.get("reason"))
    part = (g.get("partition") or {}).get("name")
    partitions = (str(part),) if part else None
    names = [name for entry in nodes.get("nodes", []) for name in expand_nodes(_name(entry))]
    busy, full = _busy(node.get("state"))
    cpus = _group_cpus(g.get("cpus"))
    return [SlurmNode(name, state, reason, features, gpus, model, partitions, busy, full, cpus) for name in names]


# `sinfo --Node --format=%N|%T` words (Slurm's node_state_string, long form) and the suffix marks it adds:
# the daemon's drain watch reads this every half second, far cheaper than --json on a large cluster
_TEXT_UP = {"idle", "allocated", "mixed", "completing", "planned", "reserved", "resv"}
_TEXT_DRAIN = {"drained", "draining", "drain", "fail", "failing", "maint", "reboot_requested", "reboot_issued",
               "power_down", "powered_down", "powering_down", "powering_up", "perfctrs", "npc", "blocked",
               "inval", "invalid_reg"}
_TEXT_DOWN = {"down", "future", "unknown", "cloud", "not_responding"}
_TEXT_MARKS = "*~#!%$@^-+"


def text_node_state(word: str) -> str | None:
    """One %T word ("idle", "down*", "mixed-", "drained@", "idle+drain") -> up | drain | down; None if the
    word is not Slurm's (the caller counts it and keeps the node off)."""
    w = word.strip().lower()
    marks = set()
    while w and w[-1] in _TEXT_MARKS:
        marks.add(w[-1])
        w = w[:-1]
    parts = w.split("+")
    if not w or any(p not in _TEXT_UP | _TEXT_DRAIN | _TEXT_DOWN for p in parts):
        return None
    if "*" in marks or any(p in _TEXT_DOWN for p in parts):
        return "down"
    if marks & set("~#!%$@^") or any(p in _TEXT_DRAIN for p in parts):
        return "drain"
    return "up"


def parse_node_states_text(text: str) -> tuple[list[SlurmNode], list[str]]:
    """`sinfo --noheader --Node --format=%N|%T` -> (nodes, problems). A node listed twice (two partitions)
    keeps its worst state; a line or word we cannot read is a problem and its node is not usable. No node
    at all is an error, never an empty cluster."""
    worst: dict[str, str] = {}
    problems: list[str] = []
    rank = {"up": 0, "drain": 1, "down": 2}
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, word = line.strip().partition("|")
        state = text_node_state(word) if sep and name and "|" not in word else None
        if state is None:
            problems.append(f"sinfo line {k}: cannot read {line.strip()[:80]!r}")
            if not (sep and name):
                continue
            state = "down"
        if rank[state] >= rank[worst.get(name, "up")]:
            worst[name] = state
    if not worst:
        raise BackendError("sinfo --Node listed no nodes: refusing to treat the cluster as empty")
    return [SlurmNode(n, s) for n, s in worst.items()], problems


def _num(v: Any) -> int:
    if isinstance(v, dict):  # newer Slurm: {"set": true, "number": N}
        return int(v.get("number", 0)) if v.get("set", True) else 0
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def _minutes_s(v: Any) -> float | None:
    """A time limit in minutes (a number, or newer Slurm's {"set", "infinite", "number"}) in seconds."""
    if isinstance(v, dict) and (v.get("infinite") or not v.get("set", True)):
        return None
    minutes = _num(v)
    return float(minutes * 60) if minutes > 0 else None


def _exclusive(shared: Any) -> bool:
    """squeue's `shared` (a word, or a list of flags in newer Slurm): only an explicit "exclusive" counts;
    a plain job shows "none" (24.11) or nothing (26.05), so nothing else is read into it."""
    flags = shared if isinstance(shared, list) else [shared]
    return any(str(f).lower() == "exclusive" for f in flags)


def _record(parse: Callable[[Any], T], record: Any, where: str) -> T:
    """One record of Slurm's JSON: a shape we cannot read fails the whole document, naming the record
    (a refresh that half-reads Slurm would decide on a cluster that does not exist)."""
    if not isinstance(record, dict):
        raise BackendError(f"{where}: expected an object, got {type(record).__name__}")
    try:
        return parse(record)
    except BackendError as exc:
        raise BackendError(f"{where}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise BackendError(f"{where}: unreadable ({type(exc).__name__}: {str(exc)[:120]})") from None


def parse_squeue_json(text: str) -> list[SlurmJob]:
    doc = _load(text, "squeue --json")
    jobs = doc.get("jobs", [])
    if not isinstance(jobs, list):
        raise BackendError(f"squeue --json: `jobs` is {type(jobs).__name__}, not a list")
    return [_record(_squeue_job, j, f"squeue --json: jobs[{i}]") for i, j in enumerate(jobs)]


def _str(j: dict[str, Any], key: str) -> str:
    v = j.get(key)
    if v is None or isinstance(v, str):
        return v or ""
    raise ValueError(f"`{key}` is {type(v).__name__}, not a string")


def _squeue_job(j: dict[str, Any]) -> SlurmJob:
    state = _job_state(j.get("job_state"))
    if not state:
        raise ValueError("no job_state")
    gpu_ids: dict[str, tuple[int, ...]] = {}
    res = j.get("job_resources") or {}
    alloc = res.get("allocated_nodes") or []
    detail = j.get("gres_detail") or []
    names = [a.get("nodename") for a in alloc] if alloc else list(expand_nodes(j.get("nodes")))
    for node, gres in zip(names, detail):  # gres_detail lists the nodes in allocation order
        if node:
            gpu_ids[str(node)] = parse_gpu_idx(str(gres))
    job_id = j["job_id"]
    running = state in RUNNING_STATES
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
        raise ValueError(f"job_id {job_id!r} is not a job id")
    return SlurmJob(
        job_id=job_id, name=_str(j, "name"), state=state,
        user_id=_num(j.get("user_id")), partition=_str(j, "partition"),
        priority=_num(j.get("priority")), reason=_str(j, "state_reason"),
        comment=_str(j, "comment"), admin_comment=_str(j, "admin_comment"),
        submit_time=_num(j.get("submit_time")),
        node_count=_num(j.get("node_count")), nodes=expand_nodes(j.get("nodes")) if state in RUNNING_STATES
        else (),
        gpu_ids=gpu_ids, gpus_per_node=parse_tres_gpus(j.get("tres_per_node")),
        gpus_per_job=parse_tres_gpus(j.get("tres_per_job")),
        gpus_per_task=parse_tres_gpus(j.get("tres_per_task")), tasks=_num(j.get("tasks")),
        gpus_per_socket=parse_tres_gpus(j.get("tres_per_socket")),
        required_nodes=expand_nodes(j.get("required_nodes")),
        excluded_nodes=expand_nodes(j.get("excluded_nodes")), features=_str(j, "features"),
        gpu_model=next((m for k in ("tres_per_job", "tres_per_node", "tres_per_task", "tres_per_socket")
                        if (m := parse_tres_gpu_model(j.get(k)))), None),
        exclusive=_exclusive(j.get("shared")), time_limit_s=_minutes_s(j.get("time_limit")),
        qos=_str(j, "qos"), end_time=_num(j.get("end_time")) if running else 0,
        dependency=_str(j, "dependency"), eligible_time=_num(j.get("eligible_time")), reservation=_str(j, "resv_name"),
        array_job_id=_num(j.get("array_job_id")), array_tasks=_str(j, "array_task_string") if state == "PENDING"
        else "", het_job_id=_num(j.get("het_job_id")),
        cpus_by_node=_cpus_by_node(res) if running else {}, cpus_per_node=0 if running else _cpus_needed(j))


def _cpus_by_node(res: Any) -> dict[str, int]:
    """A running job's CPUs on each node, at least: 23.x+'s `job_resources.nodes.allocation[].cpus.count`,
    or 22.05's core map (`allocated_nodes[].sockets`: its allocated cores, each at least one CPU)."""
    if not isinstance(res, dict):
        return {}
    out: dict[str, int] = {}
    nodes = res.get("nodes")
    for a in (nodes.get("allocation") if isinstance(nodes, dict) else None) or []:
        if isinstance(a, dict) and a.get("name") and isinstance(a.get("cpus"), dict):
            out[str(a["name"])] = out.get(str(a["name"]), 0) + max(_num(a["cpus"].get("count")), 0)
    for a in res.get("allocated_nodes") or []:
        if isinstance(a, dict) and a.get("nodename") and isinstance(a.get("sockets"), dict):
            cores = sum(1 for s in a["sockets"].values() if isinstance(s, dict) and isinstance(s.get("cores"), dict)
                        for c in s["cores"].values() if c == "allocated")
            out[str(a["nodename"])] = out.get(str(a["nodename"]), 0) + cores
    return out


def _cpus_needed(j: dict[str, Any]) -> int:
    """A pending job's CPUs on each node, at least (plugins/cpus.py), from squeue's request fields."""
    nodes = _num(j.get("node_count"))
    gpus = parse_tres_gpus(j.get("tres_per_node")) or (parse_tres_gpus(j.get("tres_per_job")) if nodes <= 1 else 0)
    return cpus_per_node_needed(nodes, _num(j.get("cpus")), _num(j.get("minimum_cpus_per_node")),
                                _num(j.get("cpus_per_task")), _num(j.get("tasks_per_node")),
                                parse_tres_gpus(j.get("cpus_per_tres")), gpus)


NO_RESERVATIONS = "No reservations in the system"
RESERVATION_COMMAND = ["scontrol", "show", "reservation", "--oneliner"]
# the fields read, each the first of its name on the line: Slurm prints them before any free text (Comment)
_RESV_FIELD = re.compile(r"(?:^|\s)(ReservationName|StartTime|EndTime|Nodes)=(\S*)")


def _resv_time(text: str) -> float | None:
    """`2026-12-07T17:59:13` in this machine's time zone, as scontrol printed it; None when not a time."""
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def parse_reservations_text(text: str) -> tuple[list[SlurmReservation], list[str]]:
    """`scontrol show reservation --oneliner` (the same on 22.05, 24.11 and 26.05; 22.05 has no --json for
    it) -> (reservations, problems). A time placer cannot read is a problem, and the reservation is kept
    as lasting from always to forever (its nodes are then never given); a line without a name or with a
    node list placer cannot read is an error: a reservation missed would send jobs where Slurm starts none."""
    out: list[SlurmReservation] = []
    problems: list[str] = []
    if not text.strip():  # Slurm says when there are none: nothing at all is a client or wrapper that failed
        raise BackendError(f"scontrol show reservation printed nothing (with no reservations Slurm prints "
                           f"{NO_RESERVATIONS!r})")
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.strip() == NO_RESERVATIONS:
            continue
        fields: dict[str, str] = {}
        for key, value in _RESV_FIELD.findall(line):
            fields.setdefault(key, value)
        if not fields.get("ReservationName") or "Nodes" not in fields:
            raise BackendError(f"scontrol show reservation line {k}: no ReservationName or Nodes in "
                               f"{line.strip()[:120]!r}")
        name, nodes = fields["ReservationName"], fields["Nodes"]
        try:
            names = expand_nodes(nodes) if nodes not in ("", "(null)") else ()
        except HostlistError as exc:
            raise BackendError(f"scontrol show reservation line {k} ({name}): Nodes={nodes[:80]}: {exc}") from None
        start, end = _resv_time(fields.get("StartTime", "")), _resv_time(fields.get("EndTime", ""))
        if start is None or end is None:
            problems.append(f"reservation {name}: cannot read its StartTime/EndTime "
                            f"({fields.get('StartTime')!r}, {fields.get('EndTime')!r}): its nodes are kept off")
        out.append(SlurmReservation(name, names, start if start is not None and end is not None else 0.0,
                                    end if start is not None and end is not None else float("inf")))
    return out, problems


SAVED_FILES = {"sinfo": "sinfo.json", "squeue": "squeue.json"}
SAVED_RESERVATIONS = "reservations.txt"


def _saved_reservations(base: Path) -> str:
    """reservations.txt (`scontrol show reservation --oneliner`), or none, said: outputs saved before placer
    read reservations have no such file."""
    saved = base / SAVED_RESERVATIONS
    if not saved.exists():
        log.warning("no %s in %s (`%s > %s`): Slurm's reservations are not known", SAVED_RESERVATIONS, base,
                    " ".join(RESERVATION_COMMAND), SAVED_RESERVATIONS)
        return NO_RESERVATIONS
    try:
        text = saved.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise BackendError(f"saved output {saved}: {exc.strerror}") from None
    if not text.strip():
        raise BackendError(f"saved output {saved} is empty (with no reservations Slurm prints {NO_RESERVATIONS!r})")
    return text


def saved_outputs_runner(directory: str) -> Runner:
    """Answers `sinfo --json` and `squeue --json` from files saved in `directory` (sinfo.json,
    squeue.json: what an admin sends when asking for help), and `scontrol show reservation --oneliner`
    from reservations.txt, so a snapshot can be taken without Slurm. Anything else (pinning, releasing)
    is refused: saved outputs are read-only."""
    base = Path(directory)

    def run(cmd: list[str]) -> str:
        if cmd == RESERVATION_COMMAND:
            return _saved_reservations(base)
        name = SAVED_FILES.get(cmd[0]) if "--json" in cmd else None
        if name is None:
            raise BackendError(f"`{' '.join(cmd)}` cannot run on saved outputs in {base}: they are read-only")
        try:
            return (base / name).read_bytes().decode("utf-8", "replace")  # (as run_command: names are users')
        except OSError as exc:
            raise BackendError(f"saved output {base / name}: {exc.strerror} (save it with `{cmd[0]} --json`)") from None

    return run


class SlurmCliBackend:
    name = "slurm-cli"

    def __init__(self, runner: Runner) -> None:
        self.run = runner

    def version(self) -> str:
        return self.run(["sinfo", "--version"]).strip()

    def snapshot(self) -> SlurmSnapshot:
        nodes = parse_sinfo_json(self.run(["sinfo", "--json"]))
        return SlurmSnapshot(tuple(nodes), tuple(self.jobs()), reservations=tuple(self.reservations()))

    def reservations(self) -> list[SlurmReservation]:
        found, problems = parse_reservations_text(self.run(RESERVATION_COMMAND))
        for p in problems:
            log.warning("%s", p)
        return found

    def node_states(self) -> list[SlurmNode]:
        nodes, problems = parse_node_states_text(self.run(["sinfo", "--noheader", "--Node", "--format=%N|%T"]))
        for p in problems:
            log.warning("%s (node kept off)", p)
        return nodes

    def jobs(self) -> list[SlurmJob]:
        return parse_squeue_json(self.run(["squeue", "--json", "--states=all"]))

    def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
        self.run(["scontrol", "update", f"JobId={job_id}", f"ReqNodeList={nodes}", f"NumNodes={num_nodes}"])

    def release(self, job_id: int) -> None:
        self.run(["scontrol", "release", str(job_id)])

    def start_now(self, job_id: int) -> None:
        """Clear a begin time (Slurm delays a requeued job by about two minutes)."""
        self.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"])
