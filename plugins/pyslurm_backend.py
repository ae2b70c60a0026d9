"""Backend over pyslurm's object API, for sites whose Slurm matches an installable pyslurm.

pyslurm is imported here only. PyPI has only pyslurm 25.11, which refuses any other Slurm, and the
22.5.x series that matches Debian bookworm's Slurm is not on PyPI (../shared/SLURM-LAB.md), so this
backend is written against pyslurm's documented object API (Jobs.load, Nodes.load, Job.modify,
Job.release) and is not exercised on this project's machines: the agreement test skips, saying so.
"""
from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from topology import BackendError

from .backend import Backend, SlurmJob, SlurmNode, SlurmSnapshot, expand_nodes, node_state_of, parse_tres_gpus

log = logging.getLogger(__name__)
T = TypeVar("T")


def same_release(pyslurm_version: str, slurm_version: str) -> bool:
    """pyslurm 22.5.x goes with Slurm 22.05.x, 25.11.x with 25.11.x (major and minor must match)."""
    try:
        pa = [int(x) for x in pyslurm_version.strip().split(".")[:2]]
        sa = [int(x) for x in slurm_version.strip().split()[-1].split(".")[:2]]
    except (ValueError, IndexError):
        return False
    return pa == sa


def probe(slurm_conf: str | None = None, timeout_s: float = 20.0) -> tuple[str | None, str]:
    """(pyslurm's version, "") when pyslurm imports in a child process, else (None, why not).

    Importing pyslurm loads libslurm, which ends the whole process (its `fatal`, no exception) when it
    finds no slurm.conf: only a child process may find that out."""
    env = dict(os.environ)
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    code = "import pyslurm; print(getattr(pyslurm, '__version__', ''))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, f"importing pyslurm did not finish within {timeout_s:g} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return None, f"pyslurm does not import here ({last})"
    return done.stdout.strip(), ""


def available(slurm_version: str | None = None, slurm_conf: str | None = None) -> tuple[bool, str]:
    """(usable, why not): pyslurm imports (checked in a child process) and, when Slurm's version is
    known, matches it."""
    version, why = probe(slurm_conf)
    if version is None:
        return False, why
    if slurm_version and not same_release(version, slurm_version):
        return False, f"pyslurm {version} does not match {slurm_version.strip()}"
    return True, ""


def _import_pyslurm(slurm_conf: str | None) -> Any:
    """pyslurm, in this process, reading `slurm_conf` (libslurm takes SLURM_CONF from the environment
    when it loads, never from an option): only after `probe` said it imports."""
    if slurm_conf:
        if "pyslurm" in sys.modules and os.environ.get("SLURM_CONF") != slurm_conf:
            raise BackendError(f"pyslurm is already loaded for SLURM_CONF={os.environ.get('SLURM_CONF')!r}; "
                               f"it cannot switch to {slurm_conf}")
        os.environ["SLURM_CONF"] = slurm_conf
    import pyslurm

    return pyslurm


def _backend_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Every pyslurm error (RPCError and the rest) becomes a BackendError (exit 3; the refresher survives)."""
    @functools.wraps(fn)
    def wrapped(*args: Any, **kw: Any) -> T:
        try:
            return fn(*args, **kw)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"pyslurm {fn.__name__} failed: {type(exc).__name__}: {exc}") from exc
    return wrapped


def _gpu_layout(job: Any) -> dict[str, tuple[int, ...]]:
    get = getattr(job, "get_resource_layout_per_node", None)
    if get is None:
        return {}
    out: dict[str, tuple[int, ...]] = {}
    for node, layout in (get() or {}).items():
        ids: list[int] = []
        for name, g in (layout.get("gres") or {}).items():
            if not name.startswith("gpu"):
                continue
            for part in str(g.get("indexes", "")).split(","):
                if "-" in part:
                    a, b = part.split("-", 1)
                    ids.extend(range(int(a), int(b) + 1))
                elif part.strip().isdigit():
                    ids.append(int(part))
        out[node] = tuple(ids)
    return out


class PyslurmBackend:
    name = "pyslurm"

    def __init__(self, slurm_conf: str | None = None, module: Any = None, jobs_fallback: Any = None) -> None:
        """`module`: a pyslurm stand-in (tests); otherwise pyslurm itself, once a child process showed
        that it imports with this slurm.conf. `jobs_fallback`: something with `jobs()` and `reservations()`
        (the CLI backend) for the per-job GPU requests pyslurm 22.5 does not show (`--gpus=N`) and Slurm's
        reservations."""
        self.jobs_fallback = jobs_fallback
        if module is None:
            ok, why = available(slurm_conf=slurm_conf)
            if not ok:
                raise BackendError(why)
            module = _import_pyslurm(slurm_conf)
        self.pyslurm = module

    @_backend_errors
    def snapshot(self) -> SlurmSnapshot:
        ps = self.pyslurm
        nodes = self._nodes()
        jobs = []
        for jid, j in ps.Jobs.load().items():
            state = str(j.state or "").upper()
            gres = j.gres_per_node or {}
            per_node = sum(int(v) for k, v in gres.items() if str(k).startswith("gpu")) if isinstance(gres, dict) \
                else parse_tres_gpus(str(gres))
            jobs.append(SlurmJob(
                job_id=int(jid), name=j.name or "", state=state, user_id=int(j.user_id or 0),
                partition=j.partition or "", priority=int(j.priority or 0), reason=j.state_reason or "",
                comment=j.comment or "", admin_comment=str(getattr(j, "admin_comment", None) or ""),
                submit_time=int(j.submit_time or 0), node_count=int(j.num_nodes or 0),
                nodes=expand_nodes(j.allocated_nodes), gpu_ids=_gpu_layout(j), gpus_per_node=per_node,
                required_nodes=expand_nodes(j.required_nodes),
                # documented pyslurm Job attributes; untested here (no pyslurm matches Debian's Slurm)
                excluded_nodes=expand_nodes(getattr(j, "excluded_nodes", None)),
                features=str(getattr(j, "constraints", None) or ""), qos=str(getattr(j, "qos", None) or ""),
                end_time=int(getattr(j, "end_time", None) or 0) if state == "RUNNING" else 0))
        # Slurm's reservations from scontrol (as the slurm-cli backend reads them): pyslurm's are untested here
        resv = tuple(self.jobs_fallback.reservations()) if self.jobs_fallback is not None else ()
        return SlurmSnapshot(tuple(nodes), tuple(self._with_squeue_fields(jobs)), reservations=resv)

    @_backend_errors
    def node_states(self) -> list[SlurmNode]:
        return self._nodes()

    def _nodes(self) -> list[SlurmNode]:
        out = []
        for name, n in self.pyslurm.Nodes.load().items():
            parts = str(n.state or "").upper().split("+")
            partitions = getattr(n, "partitions", None)
            out.append(SlurmNode(name, node_state_of(parts[0], parts[1:]), n.reason or "",
                                 partitions=tuple(str(p) for p in partitions) if partitions is not None else None))
        return out

    def _with_squeue_fields(self, jobs: list[SlurmJob]) -> list[SlurmJob]:
        """What pyslurm does not show, from the fallback's squeue (one call, only when a pending job needs
        it). Pending jobs that show no GPUs may have asked per job (`--gpus=N`, not shown by pyslurm 22.5):
        taken from squeue rather than for CPU jobs. And a pending job whose start placer decides or keeps
        nodes for (held by our hook, or pinned to required nodes) gets squeue's dependency and eligible
        time: a hold's reason hides both, and whether it is a job array's or a heterogeneous job's (placer
        leaves those to Slurm). pyslurm's own shapes for these are untested against any Slurm Debian ships
        (squeue's are, on 22.05, 24.11 and 26.05)."""
        gpus = {j.job_id for j in jobs if j.state == "PENDING" and j.gpus == 0}
        timing = {j.job_id for j in jobs if j.state == "PENDING" and (j.steered or j.required_nodes)}
        if not (gpus or timing) or self.jobs_fallback is None:
            return jobs
        seen = {j.job_id: j for j in self.jobs_fallback.jobs() if j.job_id in gpus | timing}
        out = []
        for j in jobs:
            q = seen.get(j.job_id)
            if q is not None and j.job_id in gpus:
                j = replace(j, gpus_per_job=q.gpus_per_job, gpus_per_node=q.gpus_per_node, gpu_model=q.gpu_model)
            if q is not None and j.job_id in timing:
                j = replace(j, dependency=q.dependency, eligible_time=q.eligible_time, array_job_id=q.array_job_id,
                            array_tasks=q.array_tasks, het_job_id=q.het_job_id, reservation=q.reservation)
            out.append(j)
        return out

    @_backend_errors
    def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
        ps = self.pyslurm
        ps.Job(job_id).modify(ps.JobSubmitDescription(required_nodes=nodes, nodes=num_nodes))

    @_backend_errors
    def release(self, job_id: int) -> None:
        self.pyslurm.Job(job_id).release()

    @_backend_errors
    def start_now(self, job_id: int) -> None:
        ps = self.pyslurm
        ps.Job(job_id).modify(ps.JobSubmitDescription(begin_time="now"))


def choose_backend(name: str, slurm_conf: str | None) -> Backend:
    """`auto`: pyslurm when it imports (checked in a child process, with this slurm.conf) and matches
    the running Slurm, else the command-line tools."""
    from .slurm_cli import SlurmCliBackend, subprocess_runner

    cli = SlurmCliBackend(subprocess_runner(slurm_conf))
    if name == "slurm-cli":
        return cli
    if name == "pyslurm":
        return PyslurmBackend(slurm_conf, jobs_fallback=cli)
    try:  # auto: pyslurm only when it imports and matches the running Slurm
        version = cli.version()
    except BackendError:
        return cli
    ok, why = available(version, slurm_conf)
    if not ok:
        log.info("backend: slurm-cli (%s)", why)
        return cli
    return PyslurmBackend(slurm_conf, jobs_fallback=cli)
