"""The seam between placer and Slurm: one small protocol, one snapshot type, one path to a ClusterState.

Every backend (slurm-cli, pyslurm) parses apart from running and ends in `to_cluster_state`, so the
two cannot disagree about what a snapshot means.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from placer.why import Running
from topology import BackendError, ClusterState, Fabric
from topology.fabric import MAX_GPUS_PER_NODE
from topology.hostlists import expand

RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STAGE_OUT", "SIGNALING"}
UNUSABLE_FLAGS = {"DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "MAINTENANCE", "NOT_RESPONDING",
                  "POWERED_DOWN", "POWER_DOWN", "REBOOT_REQUESTED", "REBOOT_ISSUED", "INVALID_REG"}


# the hook's mark on a job it held for `placer apply`, in the job's AdminComment: users cannot write
# that field, so they cannot get a job released by adding the tag to their own Comment
STEER_TAG = "placer:steer"


@dataclass(frozen=True)
class SlurmNode:
    name: str
    state: str  # "up" | "drain" | "down"
    reason: str = ""
    features: tuple[str, ...] | None = None  # active features (None: the backend did not say)
    gpus: int | None = None  # GPUs configured (Gres=gpu[:model]:N), when the backend says
    gpu_model: str | None = None  # the model in Gres=gpu:MODEL:N, when named
    partitions: tuple[str, ...] | None = None  # partitions holding the node (None: the backend did not say)
    busy: bool = False  # Slurm's base state is ALLOCATED or MIXED: some job runs on it
    full: bool = False  # ALLOCATED: every CPU is taken, so no job starts on it whatever its GPUs
    cpus: int | None = None  # CPUs configured, when the backend says (plugins/cpus.py)


@dataclass(frozen=True)
class SlurmJob:
    job_id: int
    name: str
    state: str  # Slurm's job state, upper case
    user_id: int = 0
    partition: str = ""
    priority: int = 0
    reason: str = ""
    comment: str = ""
    admin_comment: str = ""  # only admins and SlurmUser (our hook) can write it: where the steer tag lives
    submit_time: int = 0
    node_count: int = 0
    nodes: tuple[str, ...] = ()  # allocated nodes (running jobs)
    gpu_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # allocated GPU indices per node
    gpus_per_node: int = 0  # requested (tres_per_node gres:gpu:N)
    gpus_per_job: int = 0  # requested (tres_per_job gres:gpu:N)
    gpus_per_task: int = 0  # requested (tres_per_task gres:gpu:N)
    tasks: int = 0  # tasks requested (0: not said)
    gpus_per_socket: int = 0  # requested (tres_per_socket): left to Slurm
    required_nodes: tuple[str, ...] = ()
    excluded_nodes: tuple[str, ...] = ()
    features: str = ""  # --constraint as Slurm shows it
    gpu_model: str | None = None  # the model in gres/gpu:MODEL:N, when the job named one
    exclusive: bool = False
    time_limit_s: float | None = None
    qos: str = ""
    end_time: int = 0  # a running job's expected end (Slurm's EndTime: start + time limit); 0 unknown
    dependency: str = ""  # as squeue shows it: "afterok:12(unfulfilled)"; satisfied ones are dropped from it
    eligible_time: int = 0  # when Slurm found it could start (dependency met, --begin reached); 0 not yet
    array_job_id: int = 0  # the job array it belongs to (its tasks and its pending record); 0: not an array
    array_tasks: str = ""  # a pending array record's tasks as squeue shows them ("0-3", "1,5-9:2%4")
    het_job_id: int = 0  # the leader of the heterogeneous job it is a component of; 0: not one
    reservation: str = ""  # the Slurm reservation it runs in (--reservation), as squeue shows it
    cpus_by_node: dict[str, int] = field(default_factory=dict)  # a running job's CPUs per node (at least)
    cpus_per_node: int = 0  # a pending job's CPUs on each node, at least (plugins/cpus.py); 0: not said

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def steered(self) -> bool:
        """Held by our hook for `placer apply`: the tag in AdminComment and the hold it set (a user hold,
        JobHeldUser); a job an admin then held (JobHeldAdmin) is the admin's, never released by placer."""
        return self.held and self.reason == "JobHeldUser" and STEER_TAG in self.admin_comment

    @property
    def held(self) -> bool:
        return self.state == "PENDING" and (self.priority == 0 or self.reason.startswith("JobHeld")
                                            or "held" in self.reason.lower())

    @property
    def gpus(self) -> int:
        return (self.gpus_per_job or self.gpus_per_node * max(self.node_count, 1)
                or self.gpus_per_task * max(self.tasks, 1) or self.gpus_per_socket)

    @property
    def queued_gpus(self) -> int:
        """GPUs the record asks for in all: a pending job array's one record stands for each of its tasks."""
        return self.gpus * array_task_count(self.array_tasks)


def array_task_count(tasks: str) -> int:
    """How many tasks of a pending array record may start ("0-3" 4, "1,5-9:2" 4, "0-99%8" 8: at most 8 run
    at once); 1 for a record that is not an array's, or one this cannot read (a demand estimate, not a plan)."""
    listed, _, throttle = tasks.partition("%")
    count = 0
    for item in filter(None, listed.split(",")):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", item)
        if m is None:
            return 1
        first, last, step = int(m[1]), int(m[2] or m[1]), int(m[3] or 1)
        count += (last - first) // step + 1 if last >= first and step > 0 else 0
    if throttle.isdigit() and int(throttle) > 0:
        count = min(count, int(throttle))
    return max(count, 1)


# Pending reasons (Slurm's job_reason_codes) of a job that free room would not start: it waits for another
# job (Dependency), a time (BeginTime), an accounting limit (AssocGrp*/AssocMax*/QOSGrp*/QOSMax*/Max*PerAccount:
# until other jobs of its association end, or an admin raises the limit) or a partition.
NOT_WAITING_FOR_ROOM = ("Dependency", "BeginTime", "AssocGrp", "AssocMax", "QOSGrp", "QOSMax", "JobArrayTaskLimit",
                        "PartitionDown", "PartitionInactive")


# a begin time closer than this counts as now: nodes advised or pinned for the job are kept that long
BEGIN_SOON_S = 60.0


def ineligible(j: SlurmJob, now: float) -> str:
    """Why Slurm would not start pending `j` on free nodes whatever its reason says ("" if it would): a
    dependency not met, or a begin time to come. A held job's reason is JobHeld*, which hides both."""
    if "(unfulfilled)" in j.dependency or dependency_failed(j):
        return f"its dependency {j.dependency}"
    return begins_later(j.eligible_time, now)


def begins_later(begin: float | None, now: float) -> str:
    """"its begin time, in N s" for a begin time at least BEGIN_SOON_S away, else ""."""
    return f"its begin time, in {begin - now:.0f} s" if begin is not None and begin >= now + BEGIN_SOON_S else ""


def dependency_failed(j: SlurmJob) -> bool:
    """A dependency that can never be met (afterok on a job that failed): Slurm keeps the job pending
    (DependencyNeverSatisfied) or cancels it (kill_invalid_depend); free room never starts it."""
    return "(failed)" in j.dependency


def held_since(j: SlurmJob) -> int:
    """When a held job's wait for placement began as Slurm shows it: submission, or its begin time. Slurm
    leaves eligible_time 0 while a job is held (seen on 22.05), so a dependency met later shows only as
    met: `HoldClock` keeps that moment."""
    return max(j.submit_time, j.eligible_time)


@dataclass
class HoldClock:
    """When each held job became one Slurm could start, as this process saw it: a chained job's hold
    counts from the first look that found its dependency met, not from its submission hours before. A
    process started later counts from `held_since` (the job may then be released unpinned past the hold
    limit: placed by Slurm, never lost)."""

    waited: set[int] = field(default_factory=set)  # jobs seen waiting for a dependency or begin time
    eligible_at: dict[int, float] = field(default_factory=dict)  # of those, when first seen eligible

    def since(self, job_id: int, held_from: float, waiting: bool, now: float) -> float:
        """The start of the job's hold clock (`now` while it waits: no clock runs), recording what it saw."""
        if waiting:
            self.waited.add(job_id)
        elif job_id in self.waited:
            self.eligible_at.setdefault(job_id, now)
        return self.peek(job_id, held_from, waiting, now)

    def peek(self, job_id: int, held_from: float, waiting: bool, now: float) -> float:
        """`since` without recording anything: for a question (`placer why`), never a decision."""
        if waiting:
            return now
        if job_id in self.waited:
            return max(self.eligible_at.get(job_id, now), held_from)
        return held_from

    def learn(self, other: HoldClock) -> None:
        """Take in what another process saw (`placer apply`'s state file, read by the daemon): each job's
        dependency counts as met from the earliest moment either saw it met."""
        self.waited |= other.waited
        for j, t in other.eligible_at.items():
            self.eligible_at[j] = min(t, self.eligible_at.get(j, t))

    def keep_only(self, job_ids: set[int]) -> None:
        """Forget jobs no longer held (started, released, gone)."""
        self.waited &= job_ids
        self.eligible_at = {j: t for j, t in self.eligible_at.items() if j in job_ids}


def hold_clock_start(j: SlurmJob, clock: HoldClock, now: float) -> int:
    """When placer's hold clock for pending `j` started, as `placer apply` counts it (`clock`: what apply
    saw, read only): submission or the begin time, or for a job seen waiting for its dependency, when it was
    seen met; now while Slurm could not start it yet. `placer why` asks with this (CLI and daemon)."""
    return int(clock.peek(j.job_id, held_since(j), bool(ineligible(j, now)), now))


def waits_for_room(j: SlurmJob, now: float) -> bool:
    """A pending job that free GPUs would start: not held by a user or an admin (a steered job's hold is
    placer's own), not `ineligible` and not waiting for a limit. Slurm shows one reason of several;
    Priority, Resources and any reason not known here count as waiting for room (holds stand)."""
    if j.state != "PENDING" or (j.held and not j.steered) or ineligible(j, now):
        return False
    reason = j.reason
    return not (reason.startswith(NOT_WAITING_FOR_ROOM) or (reason.startswith("Max") and reason.endswith("PerAccount")))


@dataclass
class PendingDemand:
    """What the pending jobs free room would start (`waits_for_room`) ask for, by partition: the queue side
    of placer's idle rule (placer/timeline.py hold_idles). Only jobs that could use a node of the room
    weighed count; a job whose partition Slurm did not list counts everywhere (the hold stands)."""

    gpus: dict[str, int]  # a job's partition field as Slurm gives it ("a,b": several) -> GPUs asked
    masks: dict[str, np.ndarray]  # partition -> bool per fabric node
    now: float  # the moment the jobs' begin times are read against

    @classmethod
    def of(cls, jobs: Iterable[SlurmJob], fabric: Fabric, partitions: dict[str, tuple[str, ...]] | None,
           now: float) -> PendingDemand:
        gpus: dict[str, int] = {}
        for j in jobs:
            if waits_for_room(j, now):
                gpus[j.partition] = gpus.get(j.partition, 0) + j.queued_gpus
        masks = {}
        for name, nodes in (partitions or {}).items():
            masks[name] = np.zeros(fabric.n_nodes, dtype=bool)
            masks[name][[fabric.node_index[n] for n in nodes if n in fabric.node_index]] = True
        return cls(gpus, masks, now)

    def could_use(self, partition: str, room: np.ndarray) -> bool:
        names = [p for p in partition.split(",") if p]
        if not names or any(p not in self.masks for p in names):
            return True
        return any(bool((self.masks[p] & room).any()) for p in names)

    def asking(self, room: np.ndarray, leave_out: SlurmJob | None = None) -> int:
        """GPUs the pending jobs that could use a node of `room` (bool per node) ask for, but `leave_out`'s."""
        total = sum(g for part, g in self.gpus.items() if g and self.could_use(part, room))
        if leave_out is not None and waits_for_room(leave_out, self.now) and self.could_use(leave_out.partition, room):
            total -= leave_out.queued_gpus
        return total

    def started(self, j: SlurmJob) -> None:
        """`j` was pinned to start now: it asks for nothing more."""
        if waits_for_room(j, self.now) and j.partition in self.gpus:
            self.gpus[j.partition] -= j.queued_gpus


@dataclass(frozen=True)
class SlurmReservation:
    """A Slurm reservation (`scontrol show reservation`): while it is active Slurm starts no job outside it
    on its nodes, and before, none whose time limit would reach into it."""
    name: str
    nodes: tuple[str, ...]
    start: float  # epoch seconds
    end: float  # epoch seconds; inf when Slurm gave none placer can read


def reserved_nodes(reservations: Iterable[SlurmReservation], now: float, time_limit_s: float | None
                   ) -> tuple[str, ...]:
    """The nodes a job started now and running up to `time_limit_s` (None: no limit known, so until any
    time) may not use: those of every reservation it would run into. Placer places no job that runs in a
    reservation (`--reservation`: left to Slurm)."""
    until = now + time_limit_s if time_limit_s else float("inf")
    return tuple(sorted({n for r in reservations if r.end > now and r.start < until for n in r.nodes}))


@dataclass(frozen=True)
class SlurmSnapshot:
    nodes: tuple[SlurmNode, ...]
    jobs: tuple[SlurmJob, ...]
    version: str = ""
    reservations: tuple[SlurmReservation, ...] = ()

    def partition_nodes(self) -> dict[str, tuple[str, ...]] | None:
        """Partition name -> its nodes, as Slurm listed them; None when the backend did not say (a job's
        partition then cannot be checked, and placer advises nothing for it)."""
        if any(n.partitions is None for n in self.nodes):
            return None
        out: dict[str, list[str]] = {}
        for n in self.nodes:
            for p in n.partitions or ():
                if not out.get(p) or out[p][-1] != n.name:  # newer sinfo lists a node once per state group
                    out.setdefault(p, []).append(n.name)
        return {p: tuple(dict.fromkeys(names)) for p, names in out.items()}

    def spoken_for(self, fabric: Fabric, now: float) -> np.ndarray:
        """Nodes pending jobs will start on (required nodes: placer's pins, the hook's advice, -w); a held
        job's are not (it starts nowhere until released), nor one's that is `ineligible` (Slurm keeps no
        room for a job waiting for its dependency or begin time either)."""
        mask = np.zeros(fabric.n_nodes, dtype=bool)
        for j in self.jobs:
            if j.state == "PENDING" and not j.held and not ineligible(j, now):
                mask[[fabric.node_index[n] for n in j.required_nodes if n in fabric.node_index]] = True
        return mask


class Backend(Protocol):
    name: str

    def snapshot(self) -> SlurmSnapshot: ...

    def node_states(self) -> list[SlurmNode]:
        """Only the nodes' states: cheap enough to ask every half second (the daemon's drain watch)."""

    def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
        """Require exactly these nodes (a hostlist) for a pending job."""

    def release(self, job_id: int) -> None: ...

    def start_now(self, job_id: int) -> None:
        """Clear the job's begin time."""


_GPU_IDX = re.compile(r"gpu(?::[^:(]+)?:(\d+)\(IDX:([^)]*)\)")


def parse_gpu_idx(text: str) -> tuple[int, ...]:
    """`gpu:h100:2(IDX:3-4)` (several entries allowed) -> (3, 4); `IDX:N/A` -> ()."""
    out: list[int] = []
    for _, idx in _GPU_IDX.findall(text or ""):
        for part in idx.split(","):
            part = part.strip()
            if not part or part == "N/A":
                continue
            a, _, b = part.partition("-")
            lo, hi = int(a), int(b or a)
            if not 0 <= lo <= hi < MAX_GPUS_PER_NODE:  # never a range of a billion GPUs from one odd line
                raise ValueError(f"GPU indices {part!r} are not within 0-{MAX_GPUS_PER_NODE - 1}")
            out.extend(range(lo, hi + 1))
    return tuple(out)


def parse_tres_gpus(text: str | None) -> int:
    """`gres:gpu:8`, `gres:gpu:h100:8`, `gres/gpu:8` (first GPU entry wins) -> 8."""
    if not text:
        return 0
    m = re.search(r"gres[:/]gpu(?::[A-Za-z][^:,]*)?[:=](\d{1,9})(?!\d)", str(text))
    return int(m.group(1)) if m else 0


def parse_tres_gpu_model(text: str | None) -> str | None:
    """`gres/gpu:h100:8` -> "h100"; `gres:gpu:8` -> None (no model named)."""
    m = re.search(r"gres[:/]gpu:([A-Za-z][^:,=]*)[:=]\d+", text or "")
    return m.group(1).lower() if m else None


def node_state_of(base: str, flags: list[str] | tuple[str, ...]) -> str:
    base = (base or "").upper()
    upper = {f.upper() for f in flags}
    if base in ("DOWN", "FUTURE", "UNKNOWN") or "FAIL" in upper or "NOT_RESPONDING" in upper:
        return "down"
    if upper & UNUSABLE_FLAGS or base in ("DRAIN", "DRAINED", "DRAINING"):
        return "drain"
    return "up"


@dataclass
class StateReport:
    state: ClusterState
    warnings: list[str]
    running: list[SlurmJob]
    # what the inventory gets wrong about this cluster, by kind ("not in Slurm", "GPU count", "GPU model",
    # "features") -> node names: advice from a wrong inventory can put jobs where they cannot run
    mismatch: dict[str, list[str]] = field(default_factory=dict)
    # nodes taken whole though no running job seen holds their GPUs: node -> why (see _taken_by_slurm)
    taken: dict[str, str] = field(default_factory=dict)

    def mismatch_text(self) -> str:
        return mismatch_text(self.mismatch)


def mismatch_text(mismatch: dict[str, list[str]]) -> str:
    """What the inventory gets wrong, one clause per kind ("" when nothing)."""
    return "; ".join(f"{kind}: {len(names)} node(s), {_some(names)}" for kind, names in mismatch.items())


def to_cluster_state(fabric: Fabric, snap: SlurmSnapshot) -> StateReport:
    """Slurm's picture as a ClusterState: down/drained nodes unusable, running jobs' GPUs allocated.

    Never silently empty: no node at all, or none of the fabric's, is a BackendError; fabric nodes
    Slurm does not list are not used, and nodes whose GPUs or features differ from the inventory are
    warned about (one line per kind)."""
    state = ClusterState(fabric)
    mismatch = _node_states(fabric, snap, state)
    warnings = [f"{len(names)} node(s) of the inventory are not in Slurm and will not be used: {_some(names)}"
                if kind == "not in Slurm" else
                f"{len(names)} node(s) whose {kind} in Slurm differ from the inventory: {_some(names)}"
                for kind, names in mismatch.items()]
    running = [job for job in snap.jobs if job.running]
    warnings += _allocate(fabric, state, running)
    taken, said = _taken_by_slurm(fabric, state, snap.nodes, running)
    return StateReport(state, warnings + said, running, mismatch, taken)


# past this share of Slurm's allocated nodes, nodes with no job seen on them are said: a few are a job that
# ended between sinfo and squeue; many are jobs Slurm hides from this user
HIDDEN_SHARE = 0.1


def _taken_by_slurm(fabric: Fabric, state: ClusterState, nodes: Iterable[SlurmNode], running: list[SlurmJob]
                    ) -> tuple[dict[str, str], list[str]]:
    """Nodes Slurm shows ALLOCATED (every CPU taken: a job given its free GPUs would wait, say behind a
    CPU-only job holding all its cores), and nodes shown allocated or mixed with no running job seen on
    them, are taken whole (what is free of them). The second are said when many: with `PrivateData=jobs`
    in slurm.conf, squeue shows a user who is not root or SlurmUser only their own jobs, and every other
    job's GPUs would read as free. Returns (node -> why taken, what to say)."""
    nodes = list(nodes)
    seen = {n for j in running for n in j.nodes}
    busy = {n.name for n in nodes if n.busy}
    hidden = sorted(n for n in busy - seen if n in fabric.node_index)
    taken = {n.name: TAKEN_FULL for n in nodes if n.full and n.name in fabric.node_index}
    taken.update({n: TAKEN_HIDDEN for n in hidden})  # the likelier cause when both: no job seen at all
    if not taken:
        return {}, []
    idx = np.asarray([fabric.node_index[n] for n in taken], dtype=np.int64)
    free = state.free_mask[idx].astype(np.uint64)
    state.allocate_masks(idx[free != 0], free[free != 0])
    if not hidden or len(hidden) < max(1.0, HIDDEN_SHARE * len(busy)):
        return taken, []
    return taken, [f"{len(hidden)} of the {len(busy)} node(s) Slurm shows allocated carry no running job placer "
                   f"can see ({_some(hidden)}): taken as busy. Does slurm.conf set PrivateData=jobs? Then run placer "
                   "as root or SlurmUser, which see every job"]


TAKEN_FULL = "Slurm shows it ALLOCATED: every CPU taken"
TAKEN_HIDDEN = "Slurm shows it allocated, with no running job placer can see"


def _node_states(fabric: Fabric, snap: SlurmSnapshot, state: ClusterState) -> dict[str, list[str]]:
    if not snap.nodes:
        raise BackendError("Slurm reported no nodes at all: refusing to treat the cluster as empty")
    seen = np.zeros(fabric.n_nodes, dtype=bool)
    mismatched: dict[str, list[str]] = {}
    for n in snap.nodes:
        i = fabric.node_index.get(n.name)
        if i is None:
            continue  # nodes outside the fabric (login, CPU-only) are not ours to place on
        seen[i] = True
        state.set_usable(i, bool(state.usable[i]) and n.state == "up")  # listed twice (two partitions): worst wins
        for kind in _differences(fabric, i, n):
            mismatched.setdefault(kind, []).append(n.name)
    if not seen.any():
        raise BackendError(f"none of the {fabric.n_nodes} nodes of fabric {fabric.name!r} is known to Slurm "
                           f"({len(snap.nodes)} nodes there, e.g. {snap.nodes[0].name}): wrong inventory or cluster?")
    missing = [fabric.node_names[i] for i in np.nonzero(~seen)[0]]
    for name in missing:
        state.set_usable(fabric.node_index[name], False)
    return ({"not in Slurm": missing} if missing else {}) | mismatched


def hold_for_pending(fabric: Fabric, state: ClusterState, snap: SlurmSnapshot, now: float) -> None:
    """Pending, not held, with required nodes: released by us, advised by the hook, or pinned by the user
    (-w); Slurm will start them there, so their nodes are spoken for (not while `ineligible`: see
    SlurmSnapshot.spoken_for)."""
    for j in snap.jobs:
        if j.state != "PENDING" or j.held or not j.required_nodes or ineligible(j, now):
            continue
        per_node = j.gpus_per_node or max(j.gpus // max(len(j.required_nodes), 1), 1)
        for name in j.required_nodes:
            n = fabric.node_index.get(name)
            if n is None:
                continue
            free = state.free_gpu_ids(n)
            take = free if (len(j.required_nodes) > 1 or per_node >= int(fabric.node_gpus[n])) else free[:per_node]
            if take:
                state.allocate(n, take)


def _allocate(fabric: Fabric, state: ClusterState, running: list[SlurmJob]) -> list[str]:
    """The running jobs' GPUs taken, in one step (`allocate_masks`); GPUs already taken (by an earlier job
    of the list too), or nodes outside the fabric, are warned about and left out."""
    warnings = []
    busy = [f & ~free for f, free in zip(state.full_mask.tolist(), state.free_mask.tolist(), strict=True)]
    have = fabric.node_gpus.tolist()
    nodes: list[int] = []
    masks: list[int] = []
    for job in running:
        for node in job.nodes:
            i = fabric.node_index.get(node)
            if i is None:
                warnings.append(f"job {job.job_id} runs on {node}, which is not in fabric {fabric.name!r}")
                continue
            ids = job.gpu_ids.get(node, ())
            if not ids:
                continue  # a job without GPUs on this node
            clash = [g for g in ids if not 0 <= g < have[i] or busy[i] >> g & 1]
            if clash:
                warnings.append(f"job {job.job_id}: GPUs {clash} of {node} are already taken or do not exist")
            m = sum(1 << g for g in set(ids).difference(clash))
            if m:
                busy[i] |= m
                nodes.append(i)
                masks.append(m)
    state.allocate_masks(np.asarray(nodes, dtype=np.int64), np.asarray(masks, dtype=np.uint64))
    return warnings


def _differences(fabric: Fabric, i: int, n: SlurmNode) -> list[str]:
    """What Slurm says of node i that the inventory contradicts (only what the backend reported)."""
    t = fabric.node_types[int(fabric.node_type[i])]
    out = []
    if n.gpus is not None and n.gpus != int(fabric.node_gpus[i]):
        out.append("GPU count")
    if n.gpu_model is not None and n.gpu_model.lower() != t.gpu_model.lower():
        out.append("GPU model")
    if n.features is not None and not set(t.features) <= set(n.features):
        out.append("features")
    return out


def _some(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def expand_nodes(text: str | None) -> tuple[str, ...]:
    return tuple(expand(text)) if text else ()


def running_of(fabric: Fabric, jobs: Iterable[SlurmJob]) -> list[Running]:
    """Running jobs as the planner's timeline sees them: their GPUs and Slurm's EndTime (None: unknown)."""
    out = []
    for j in jobs:
        if j.running:
            alloc = [(fabric.node_index[n], tuple(ids)) for n, ids in j.gpu_ids.items() if n in fabric.node_index]
            # Slurm's EndTime is its start plus the time limit
            start = float(j.end_time - j.time_limit_s) if j.end_time and j.time_limit_s else None
            out.append(Running(str(j.job_id), float(j.end_time) if j.end_time else None, alloc, start))
    return out
