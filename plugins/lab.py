"""A real Slurm 22.05 cluster on this machine for tests, CI and trying the hook (see ../shared/SLURM-LAB.md).

munged (unless one already runs), one slurmctld, one slurmd per node (each on its own port, all on
127.0.0.1) with fake GPU devices, topology.conf exported from the inventory, and optionally our
job_submit.lua. Everything lives under one directory (default /var/lib/placer-lab) with its own
slurm.conf, so /etc/slurm is untouched: clients find it through SLURM_CONF. `down` stops exactly the
processes `up` started, by pid, after checking each pid still runs the program it started.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from topology import BackendError, Fabric
from topology.exporters import export_gres, export_slurm_tree
from topology.fabric import NodeState
from topology.hostlists import compress

from .slurm_cli import run_command

log = logging.getLogger(__name__)

PACKAGES = "munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins lua-socket lua-cjson"
DEFAULT_DIR = Path("/var/lib/placer-lab")
HOOK_SOURCE = Path(__file__).with_name("job_submit.lua")


@dataclass(frozen=True)
class LabOptions:
    base: Path = DEFAULT_DIR
    ctld_port: int = 16817
    slurmd_port: int = 17001
    hook: bool = True
    socket_path: Path = Path("/run/placer/placer.sock")
    hook_budget_s: float = 0.05
    cpus: int = 16
    memory_mib: int = 64000


def slurm_env(base: Path = DEFAULT_DIR) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(base / "etc" / "slurm.conf")}


# -- configuration text (pure) ---------------------------------------------------------------------
def slurm_conf_text(fabric: Fabric, opt: LabOptions) -> str:
    b = opt.base
    host = socket.gethostname().split(".")[0]
    lines = [
        "# written by `placer lab up`; the lab's own slurm.conf (see ../shared/SLURM-LAB.md)",
        "ClusterName=placerlab",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={opt.ctld_port}",
        "SlurmUser=slurm",
        "AuthType=auth/munge",
        f"StateSaveLocation={b}/ctld",
        f"SlurmdSpoolDir={b}/spool/%n",
        f"SlurmctldPidFile={b}/run/slurmctld.pid",
        f"SlurmdPidFile={b}/run/slurmd-%n.pid",
        f"SlurmctldLogFile={b}/log/slurmctld.log",
        f"SlurmdLogFile={b}/log/slurmd-%n.log",
        "SlurmdParameters=config_overrides",
        "ProctrackType=proctrack/pgid",
        "TaskPlugin=task/none",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "GresTypes=gpu",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=max_switch_wait=300",
        "TopologyPlugin=topology/tree",
        "ReturnToService=2",
        "MpiDefault=none",
        "MinJobAge=5",
        "KillWait=5",
    ]
    if opt.hook:
        lines.append("JobSubmitPlugins=lua")
    for i, name in enumerate(fabric.node_names):
        t = fabric.node_types[int(fabric.node_type[i])]
        gres = f"gpu:{t.gpu_model}:{t.gpus}" if t.gpu_model != "gpu" else f"gpu:{t.gpus}"
        feats = f" Feature={','.join(t.features)}" if t.features else ""
        lines.append(f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={opt.slurmd_port + i} "
                     f"CPUs={opt.cpus} RealMemory={opt.memory_mib} Gres={gres}{feats}")
    for i, s in enumerate(fabric.node_state.tolist()):
        if s != NodeState.UP:
            reason = fabric.node_reason.get(i, "inventory").replace('"', "'")
            lines.append(f'DownNodes={fabric.node_names[i]} State={NodeState(s).name} Reason="{reason}"')
    lines.append(f"PartitionName=gpu Nodes={compress(fabric.node_names)} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def hook_text(opt: LabOptions) -> str:
    """Our job_submit.lua with this lab's socket and budget filled in."""
    text = HOOK_SOURCE.read_text()
    text = text.replace('local SOCKET_PATH = "/run/placer/placer.sock"', f'local SOCKET_PATH = "{opt.socket_path}"')
    return text.replace("local BUDGET_S = 0.05", f"local BUDGET_S = {opt.hook_budget_s}")


# -- processes -------------------------------------------------------------------------------------
def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> str:
    return run_command(cmd, env, timeout, missing=f"install Debian's packages: apt-get install -y {PACKAGES}")


def _pid_from(path: Path, wait_s: float = 10) -> int:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise BackendError(f"no pid file {path} after {wait_s:g} s; see the logs under {path.parent.parent / 'log'}")


def _alive(pid: int, program: str) -> bool:
    """The pid runs `program` (a recycled pid running something else does not count)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(cmd).name.startswith(program)


class Lab:
    def __init__(self, opt: LabOptions = LabOptions()) -> None:
        self.opt = opt
        self.state_file = opt.base / "lab.json"

    def load_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def check_prerequisites(self) -> None:
        if os.geteuid() != 0:
            raise BackendError("placer lab needs root: it starts munged, slurmctld and one slurmd per node")
        missing = [p for p in ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sinfo")
                   if not Path(p).exists()]
        if missing:
            raise BackendError(f"missing {', '.join(missing)}; install Debian's packages: "
                               f"apt-get install -y {PACKAGES}")

    def up(self, fabric: Fabric, wait_s: float = 120) -> dict:
        self.check_prerequisites()
        old = self.load_state()
        if old and any(_alive(p["pid"], p["program"]) for p in old["processes"]):
            raise BackendError(f"a lab is already up under {self.opt.base}; `placer lab down` first")
        b = self.opt.base
        for sub in ("etc", "run", "log", "spool", "ctld", "fakegpu"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(b / "ctld", ignore_errors=True)  # a fresh controller state every time
        (b / "ctld").mkdir()
        for sub in ("ctld", "log", "run"):
            shutil.chown(b / sub, "slurm", "slurm")
        b.chmod(0o755)
        gpus = int(fabric.node_gpus.max())
        for g in range(gpus):  # fake GPUs: character devices that are /dev/null (a regular file is refused)
            dev = b / "fakegpu" / f"gpu{g}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
        etc = b / "etc"
        (etc / "slurm.conf").write_text(slurm_conf_text(fabric, self.opt))
        (etc / "topology.conf").write_text(export_slurm_tree(fabric))
        (etc / "gres.conf").write_text(export_gres(fabric, devices=str(b / "fakegpu" / "gpu")))
        if self.opt.hook:
            (etc / "job_submit.lua").write_text(hook_text(self.opt))
        env = slurm_env(b)
        procs: list[dict] = []
        state = {"base": str(b), "slurm_conf": str(etc / "slurm.conf"), "nodes": list(fabric.node_names),
                 "fabric": fabric.name, "processes": procs, "started": time.time()}

        def save() -> None:
            self.state_file.write_text(json.dumps(state, indent=1))

        try:
            munge_pid = Path("/run/munge/munged.pid")
            running = munge_pid.exists() and _alive(int(munge_pid.read_text().strip() or 0), "munged")
            if not running:
                Path("/run/munge").mkdir(parents=True, exist_ok=True)
                shutil.chown("/run/munge", "munge", "munge")
                _run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"])
                procs.append({"name": "munged", "program": "munged", "pid": _pid_from(munge_pid)})
                save()
            for p in (b / "run").glob("*.pid"):
                p.unlink()
            _run(["/usr/sbin/slurmctld", "-i", "-f", str(etc / "slurm.conf")], env)
            procs.append({"name": "slurmctld", "program": "slurmctld", "pid": _pid_from(b / "run" / "slurmctld.pid")})
            save()
            for i, name in enumerate(fabric.node_names):
                if fabric.node_state[i] == NodeState.DOWN:
                    continue  # a down node's slurmd does not run (ReturnToService=2 would revive it)
                (b / "spool" / name).mkdir(exist_ok=True)
                _run(["/usr/sbin/slurmd", "-N", name, "-f", str(etc / "slurm.conf")], env)
                procs.append({"name": f"slurmd:{name}", "program": "slurmd",
                              "pid": _pid_from(b / "run" / f"slurmd-{name}.pid")})
            save()
            self._wait_ready(fabric, env, wait_s)
        except BaseException:
            self.down()
            raise
        return state

    def _wait_ready(self, fabric: Fabric, env: dict[str, str], wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        want = int((fabric.node_state != NodeState.DOWN).sum())
        last = ""
        while time.monotonic() < deadline:
            try:
                out = _run(["sinfo", "-h", "-N", "-o", "%N %T"], env, timeout=10)
            except BackendError as exc:
                last = str(exc)
                time.sleep(0.3)
                continue
            states = [line.split()[1] for line in out.splitlines() if line.strip()]
            ready = sum(s in ("idle", "drained", "draining") for s in states)
            last = f"{ready} of {want} nodes ready"
            if ready >= want:
                return
            time.sleep(0.3)
        raise BackendError(f"lab not ready after {wait_s:g} s ({last}); see {self.opt.base / 'log'}")

    def status(self) -> dict:
        st = self.load_state()
        if not st:
            return {"up": False, "base": str(self.opt.base)}
        alive = {p["name"]: _alive(p["pid"], p["program"]) for p in st["processes"]}
        out = {"up": all(alive.values()) and bool(alive), "base": st["base"], "slurm_conf": st["slurm_conf"],
               "nodes": len(st["nodes"]), "processes_alive": sum(alive.values()), "processes": len(alive),
               "dead": [n for n, a in alive.items() if not a]}
        if alive.get("slurmctld"):
            try:
                out["sinfo"] = _run(["sinfo", "-h", "-o", "%T %D"], slurm_env(Path(st["base"])), timeout=10).split("\n")
            except BackendError as exc:
                out["sinfo_error"] = str(exc)
        return out

    def down(self, wait_s: float = 15) -> list[str]:
        """Stop what `up` started (slurmd, then slurmctld, then munged if we started it), by pid."""
        st = self.load_state()
        if not st:
            return []
        order = sorted(st["processes"], key=lambda p: {"slurmd": 0, "slurmctld": 1, "munged": 2}[p["program"]])
        stopped = []
        for p in order:
            if _alive(p["pid"], p["program"]):
                try:
                    os.kill(p["pid"], signal.SIGTERM)
                except ProcessLookupError:
                    continue
                stopped.append(p["name"])
        deadline = time.monotonic() + wait_s
        for p in order:
            while _alive(p["pid"], p["program"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(p["pid"], p["program"]):
                log.warning("%s (pid %d) ignored SIGTERM; killing it", p["name"], p["pid"])
                os.kill(p["pid"], signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        return stopped
