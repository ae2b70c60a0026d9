"""Backend over pyslurm's object API, for sites whose Slurm matches an installable pyslurm.

pyslurm is imported here only. PyPI has only pyslurm 25.11, which refuses any other Slurm, and the
22.5.x series that matches Debian bookworm's Slurm is not on PyPI (../shared/SLURM-LAB.md), so this
backend is written against pyslurm's documented object API (Jobs.load, Nodes.load, Job.modify,
Job.release) and is not exercised on this project's machines: the agreement test skips, saying so.
"""
from __future__ import annotations

from typing import Any

from topology import BackendError

from .backend import SlurmJob, SlurmNode, SlurmSnapshot, expand_nodes, node_state_of, parse_tres_gpus


def same_release(pyslurm_version: str, slurm_version: str) -> bool:
    """pyslurm 22.5.x goes with Slurm 22.05.x, 25.11.x with 25.11.x (major and minor must match)."""
    try:
        pa = [int(x) for x in pyslurm_version.strip().split(".")[:2]]
        sa = [int(x) for x in slurm_version.strip().split()[-1].split(".")[:2]]
    except (ValueError, IndexError):
        return False
    return pa == sa


def available(slurm_version: str | None = None) -> tuple[bool, str]:
    """(usable, why not): pyslurm imports and, when Slurm's version is known, matches it."""
    try:
        import pyslurm
    except Exception as exc:  # ImportError, or a library mismatch at load time
        return False, f"pyslurm does not import here ({type(exc).__name__}: {exc})"
    version = str(getattr(pyslurm, "__version__", ""))
    if slurm_version and not same_release(version, slurm_version):
        return False, f"pyslurm {version} does not match {slurm_version.strip()}"
    return True, ""


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

    def __init__(self) -> None:
        ok, why = available()
        if not ok:
            raise BackendError(why)
        import pyslurm

        self.pyslurm = pyslurm

    def snapshot(self) -> SlurmSnapshot:
        ps = self.pyslurm
        nodes = []
        for name, n in ps.Nodes.load().items():
            parts = str(n.state or "").upper().split("+")
            nodes.append(SlurmNode(name, node_state_of(parts[0], parts[1:]), n.reason or ""))
        jobs = []
        for jid, j in ps.Jobs.load().items():
            state = str(j.state or "").upper()
            gres = j.gres_per_node or {}
            per_node = sum(int(v) for k, v in gres.items() if str(k).startswith("gpu")) if isinstance(gres, dict) \
                else parse_tres_gpus(str(gres))
            jobs.append(SlurmJob(
                job_id=int(jid), name=j.name or "", state=state, user_id=int(j.user_id or 0),
                partition=j.partition or "", priority=int(j.priority or 0), reason=j.state_reason or "",
                comment=j.comment or "", submit_time=int(j.submit_time or 0), node_count=int(j.num_nodes or 0),
                nodes=expand_nodes(j.allocated_nodes), gpu_ids=_gpu_layout(j), gpus_per_node=per_node,
                required_nodes=expand_nodes(j.required_nodes),
                # documented pyslurm Job attributes; untested here (no pyslurm matches Debian's Slurm)
                excluded_nodes=expand_nodes(getattr(j, "excluded_nodes", None)),
                features=str(getattr(j, "constraints", None) or ""), qos=str(getattr(j, "qos", None) or "")))
        return SlurmSnapshot(tuple(nodes), tuple(jobs))

    def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
        ps = self.pyslurm
        ps.Job(job_id).modify(ps.JobSubmitDescription(required_nodes=nodes, nodes=num_nodes))

    def release(self, job_id: int) -> None:
        self.pyslurm.Job(job_id).release()

    def start_now(self, job_id: int) -> None:
        ps = self.pyslurm
        ps.Job(job_id).modify(ps.JobSubmitDescription(begin_time="now"))


def choose_backend(name: str, slurm_conf: str | None):
    """`auto`: pyslurm when it imports, else the command-line tools."""
    from .slurm_cli import SlurmCliBackend, subprocess_runner

    cli = SlurmCliBackend(subprocess_runner(slurm_conf))
    if name == "slurm-cli":
        return cli
    if name == "pyslurm":
        return PyslurmBackend()
    try:  # auto: pyslurm only when it imports and matches the running Slurm
        version = cli.version()
    except Exception:
        return cli
    return PyslurmBackend() if available(version)[0] else cli
