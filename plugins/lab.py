"""A real Slurm cluster on this machine for tests, CI and trying the hook (see ../shared/SLURM-LAB.md).

Its own munged, one slurmctld, one slurmd per node (each on its own port, all on 127.0.0.1) with fake GPU
devices, the topology exported from the inventory, and optionally our job_submit.lua. Slurm 22.05 runs
from the host's Debian packages; 24.11 and 26.05 from Debian trixie and sid in chroots
(plugins/lab_chroot.py), with the lab's directory bind-mounted at the same path inside. Everything
lives under one directory (default /var/lib/placer-lab, /var/lib/placer-lab-VERSION for the newer ones)
with its own slurm.conf, so /etc/slurm is untouched: clients find it through SLURM_CONF (and, for a
chroot, PATH: wrappers in DIR/bin run the chroot's own clients). `down` stops exactly the processes
`up` started, by pid, after checking each pid still runs the program it started, then undoes the mounts.
"""
from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from topology import BackendError, Fabric, RequestError
from topology.exporters import export_gres, export_slurm_block, export_slurm_tree, export_slurm_yaml
from topology.fabric import NodeState
from topology.hostlists import compress

from .hook_install import render_hook
from .lab_chroot import (
    CHROOT_ROOT,
    SlurmRelease,
    bind,
    chroot_user,
    make_chroot,
    mount_system,
    release,
    unmount,
    write_client_wrappers,
)
from .lab_steps import end_leftover_steps
from .slurm_cli import run_command

log = logging.getLogger(__name__)

PACKAGES = "munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins lua-socket lua-cjson"
DEFAULT_DIR = Path("/var/lib/placer-lab")
TOPOLOGIES = ("tree", "block", "yaml")  # topology.conf tree, topology.conf block, topology.yaml (25.05+)


def default_dir(version: str = "22.05") -> Path:
    return DEFAULT_DIR if release(version).suite is None else Path(f"{DEFAULT_DIR}-{version}")


@dataclass(frozen=True)
class LabOptions:
    base: Path = DEFAULT_DIR
    slurm: str = "22.05"  # a key of lab_chroot.RELEASES
    ctld_port: int | None = None  # None: the release's own default
    slurmd_port: int | None = None
    hook: bool = True
    socket_path: Path = Path("/run/placer/placer.sock")
    hook_budget_s: float = 0.05
    hook_backoff_s: float = 1.0  # job_submit.lua's BACKOFF_S: how long it leaves a silent daemon alone
    cpus: int = 16
    memory_mib: int = 64000
    topology: str = "tree"
    block_size: int | None = None  # nodes per block (block and yaml) where the fabric has no NVLink domains
    chroot_root: Path = CHROOT_ROOT
    extra_conf: tuple[str, ...] = field(default=())  # more slurm.conf lines (tests)

    @property
    def release(self) -> SlurmRelease:
        return release(self.slurm)

    @property
    def ports(self) -> tuple[int, int]:
        rel = self.release
        return self.ctld_port or rel.ctld_port, self.slurmd_port or rel.slurmd_port


def slurm_env(base: Path = DEFAULT_DIR) -> dict[str, str]:
    """The environment for Slurm's clients against the lab under `base` (PATH too for a chroot's lab)."""
    env = {**os.environ, "SLURM_CONF": str(base / "etc" / "slurm.conf")}
    if (base / "bin").is_dir():
        env["PATH"] = f"{base / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


# -- configuration text (pure) ---------------------------------------------------------------------
LAB_MARK = "# written by `placer lab up`"


def refuse_foreign_directory(b: Path) -> None:
    """The lab removes and rewrites its ctld, log, spool and bin under --dir, so it uses only a directory of
    its own: missing, empty, or holding an earlier lab (its lab.json, or its slurm.conf). `--dir /var` would
    have removed /var/log and /var/spool. RequestError (exit 2) naming the directory otherwise."""
    if not b.exists():
        return
    if not b.is_dir():
        raise RequestError(f"--dir {b} is not a directory")
    if not any(b.iterdir()) or (b / "lab.json").exists():
        return
    try:
        ours = (b / "etc" / "slurm.conf").read_text(errors="replace").startswith(LAB_MARK)
    except OSError:
        ours = False
    if not ours:
        raise RequestError(f"--dir {b} holds files `placer lab` did not make, and the lab removes and rewrites "
                           f"its ctld, log, spool and bin there: give a directory of its own (default {DEFAULT_DIR})")


def slurm_conf_text(fabric: Fabric, opt: LabOptions) -> str:
    b = opt.base
    host = socket.gethostname().split(".")[0]
    lines = [
        f"{LAB_MARK}; the lab's own slurm.conf (see ../shared/SLURM-LAB.md)",
        "ClusterName=placerlab",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={opt.ports[0]}",
        "SlurmUser=slurm",
        "AuthType=auth/munge",
        f"AuthInfo=socket={b}/munge/munge.socket",  # the lab's own munged (Lab._start_munged)
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
        *_topology_lines(opt.topology),
        "ReturnToService=2",
        "MpiDefault=none",
        "MailProg=/bin/true",  # else newer Slurm logs "Configured MailProg is invalid" (no mail here)
        "MinJobAge=5",
        "KillWait=5",
    ]
    if opt.hook:
        lines.append("JobSubmitPlugins=lua")
    lines += opt.extra_conf
    for i, name in enumerate(fabric.node_names):
        t = fabric.node_types[int(fabric.node_type[i])]
        gres = f"gpu:{t.gpu_model}:{t.gpus}" if t.gpu_model != "gpu" else f"gpu:{t.gpus}"
        feats = f" Feature={','.join(t.features)}" if t.features else ""
        lines.append(f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={opt.ports[1] + i} "
                     f"CPUs={opt.cpus} RealMemory={opt.memory_mib} Gres={gres}{feats}")
    for i, s in enumerate(fabric.node_state.tolist()):
        if s != NodeState.UP:
            reason = fabric.node_reason.get(i, "inventory").replace('"', "'")
            lines.append(f'DownNodes={fabric.node_names[i]} State={NodeState(s).name} Reason="{reason}"')
    lines.append(f"PartitionName=gpu Nodes={compress(fabric.node_names)} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def _topology_lines(kind: str) -> list[str]:
    if kind not in TOPOLOGIES:
        raise BackendError(f"lab topology {kind!r}: choose one of {', '.join(TOPOLOGIES)}")
    # topology.yaml (25.05+) is read when present and names its own plugins: no TopologyPlugin line
    return {"tree": ["TopologyPlugin=topology/tree"], "block": ["TopologyPlugin=topology/block"], "yaml": []}[kind]


def topology_files(fabric: Fabric, kind: str, block_size: int | None = None) -> dict[str, str]:
    """The lab's topology file for `kind`, by file name (what `placer topology export` writes)."""
    if kind == "yaml":
        return {"topology.yaml": export_slurm_yaml(fabric, block_size)}
    if kind == "block":
        return {"topology.conf": export_slurm_block(fabric, block_size)}
    return {"topology.conf": export_slurm_tree(fabric)}


def hook_text(opt: LabOptions) -> str:
    """Our job_submit.lua with this lab's socket and budget filled in."""
    return render_hook(opt.socket_path, opt.hook_budget_s, opt.hook_backoff_s)


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


def _restarted(proc: dict, base: Path) -> dict:
    """`proc` as it runs now: Slurm 24.05+ restarts slurmctld and each slurmd on `scontrol reconfigure`
    (new pids; the old ones end), and the new daemon writes its pid file. Taken from the pid file only when
    the pid `up` saw has ended and the file names this lab's daemon (its command line names the lab's
    slurm.conf): a stale file's recycled pid is never signalled."""
    if proc["program"] == "munged" or _alive(proc["pid"], proc["program"]):
        return proc
    name = "slurmctld.pid" if proc["program"] == "slurmctld" else f"slurmd-{proc['name'].split(':', 1)[-1]}.pid"
    try:
        pid = int((base / "run" / name).read_text().strip())
        ours = str(base / "etc" / "slurm.conf") in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return proc
    return {**proc, "pid": pid} if ours and _alive(pid, proc["program"]) else proc


def _signal(proc: dict, sig: int) -> None:
    if _alive(proc["pid"], proc["program"]):
        try:
            os.kill(proc["pid"], sig)
        except ProcessLookupError:
            pass


def _stop(proc: dict, wait_s: float) -> None:
    """SIGTERM, wait, then SIGKILL: one process `up` started, by pid."""
    _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while _alive(proc["pid"], proc["program"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(proc["pid"], proc["program"]):
        log.warning("%s (pid %d) ignored SIGTERM; killing it", proc["name"], proc["pid"])
        _signal(proc, signal.SIGKILL)


class Lab:
    def __init__(self, opt: LabOptions = LabOptions()) -> None:
        self.opt = opt
        self.state_file = opt.base / "lab.json"
        rel = opt.release
        self.root: Path | None = None if rel.suite is None else opt.chroot_root / rel.suite

    def load_state(self) -> dict | None:
        """What `up` started, each Slurm daemon with the pid it runs under now (`_restarted`)."""
        try:
            st = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(st, dict) and isinstance(st.get("processes"), list) and "base" in st:
            st["processes"] = [_restarted(p, Path(st["base"])) for p in st["processes"]]
        return st

    # -- where Slurm's programs are: the host, or the release's chroot ----------------------------------
    def _inside(self, path: str) -> Path:
        return Path(path) if self.root is None else self.root / path.lstrip("/")

    def _cmd(self, *argv: str) -> list[str]:
        return list(argv) if self.root is None else ["chroot", str(self.root), *argv]

    def _ids(self, user: str) -> tuple[int, int]:
        if self.root is not None:
            return chroot_user(self.root, user)
        pw = pwd.getpwnam(user)
        return pw.pw_uid, pw.pw_gid

    def check_prerequisites(self) -> None:
        if os.geteuid() != 0:
            raise BackendError("placer lab needs root: it starts munged, slurmctld and one slurmd per node")
        if self.root is not None:
            make_chroot(self.opt.release, self.opt.chroot_root)
        missing = [p for p in ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sinfo")
                   if not self._inside(p).exists()]
        if missing:
            where = f" in {self.root}" if self.root else ""
            raise BackendError(f"missing {', '.join(missing)}{where}; install Debian's packages: "
                               f"apt-get install -y {PACKAGES}")

    def _write_files(self, fabric: Fabric) -> None:
        b = self.opt.base
        # a fresh controller state, fresh logs (tests read them) and fresh slurmd spools: a job step left in a
        # spool by an earlier lab is reported as an orphan with a duplicate job id, and its node drained
        for sub in ("ctld", "log", "spool"):
            shutil.rmtree(b / sub, ignore_errors=True)
        for sub in ("etc", "run", "log", "spool", "ctld", "fakegpu"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        uid, gid = self._ids("slurm")
        for sub in ("ctld", "log", "run"):
            os.chown(b / sub, uid, gid)
        b.chmod(0o755)
        for g in range(int(fabric.node_gpus.max())):  # fake GPUs: character devices that are /dev/null
            dev = b / "fakegpu" / f"gpu{g}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
        etc = b / "etc"
        for old in ("topology.conf", "topology.yaml"):
            (etc / old).unlink(missing_ok=True)
        files = {"slurm.conf": slurm_conf_text(fabric, self.opt),
                 **topology_files(fabric, self.opt.topology, self.opt.block_size),
                 "gres.conf": export_gres(fabric, devices=str(b / "fakegpu" / "gpu"))}
        if self.opt.hook:
            files["job_submit.lua"] = hook_text(self.opt)
        for name, text in files.items():
            (etc / name).write_text(text)
            (etc / name).chmod(0o644)  # slurmctld reads them as SlurmUser
        shutil.rmtree(b / "bin", ignore_errors=True)
        if self.root is not None:
            write_client_wrappers(b / "bin", self.root)

    def _mount(self, state: dict, save: Callable[[], None]) -> None:
        """The chroot's /proc, /dev, cgroups, then the lab's directory and the socket's at the same paths."""
        assert self.root is not None
        mounts: list[str] = state["mounts"]
        try:
            mounts += mount_system(self.root)
            mounts.append(bind(self.opt.base, self._inside(str(self.opt.base))))
            if self.opt.hook:
                sock_dir = self.opt.socket_path.parent
                sock_dir.mkdir(parents=True, exist_ok=True)
                mounts.append(bind(sock_dir, self._inside(str(sock_dir))))
        finally:
            save()

    def _start_munged(self, procs: list[dict], save: Callable[[], None]) -> None:
        """The lab's own munged (socket, pid, log and seed under DIR/munge; the system's key): labs never
        share one, so `down` stops only its own and a second lab cannot pull it from under the first."""
        d = self.opt.base / "munge"
        d.mkdir(exist_ok=True)
        os.chown(d, *self._ids("munge"))
        d.chmod(0o755)  # munged refuses a socket directory others can write; clients must reach the socket
        pid_file = d / "munged.pid"
        pid_file.unlink(missing_ok=True)
        _run(self._cmd("runuser", "-u", "munge", "--", "/usr/sbin/munged", f"--socket={d / 'munge.socket'}",
                       f"--pid-file={pid_file}", f"--log-file={d / 'munged.log'}", f"--seed-file={d / 'munged.seed'}"))
        procs.append({"name": "munged", "program": "munged", "pid": _pid_from(pid_file)})
        save()

    def up(self, fabric: Fabric, wait_s: float = 120) -> dict:
        refuse_foreign_directory(self.opt.base)
        self.check_prerequisites()
        old = self.load_state()
        if old and any(_alive(p["pid"], p["program"]) for p in old["processes"]):
            raise BackendError(f"a lab is already up under {self.opt.base}; `placer lab down` first")
        if old:
            unmount(old.get("mounts", []))  # a killed earlier lab's mounts
        self._end_steps("an earlier lab")
        b = self.opt.base
        self._write_files(fabric)
        conf = str(b / "etc" / "slurm.conf")
        env = slurm_env(b)
        procs: list[dict] = []
        state = {"base": str(b), "slurm": self.opt.slurm, "chroot": str(self.root) if self.root else None,
                 "slurm_conf": conf, "path": env["PATH"] if self.root else None, "nodes": list(fabric.node_names),
                 "fabric": fabric.name, "processes": procs, "mounts": [], "started": time.time()}

        def save() -> None:
            self.state_file.write_text(json.dumps(state, indent=1))

        try:
            if self.root is not None:
                self._mount(state, save)
            self._start_munged(procs, save)
            for p in (b / "run").glob("*.pid"):
                p.unlink()
            _run(self._cmd("/usr/sbin/slurmctld", "-i", "-f", conf), env)
            procs.append({"name": "slurmctld", "program": "slurmctld", "pid": _pid_from(b / "run" / "slurmctld.pid")})
            save()
            for i, name in enumerate(fabric.node_names):
                if fabric.node_state[i] == NodeState.DOWN:
                    continue  # a down node's slurmd does not run (ReturnToService=2 would revive it)
                procs.append(self._start_slurmd(name, env))
            save()
            self._wait_ready(fabric, env, wait_s)
        except BaseException:
            self.down()
            raise
        return state

    def _start_slurmd(self, name: str, env: dict[str, str]) -> dict:
        b = self.opt.base
        (b / "spool" / name).mkdir(exist_ok=True)
        pid_file = b / "run" / f"slurmd-{name}.pid"
        pid_file.unlink(missing_ok=True)
        _run(self._cmd("/usr/sbin/slurmd", "-N", name, "-f", str(b / "etc" / "slurm.conf")), env)
        return {"name": f"slurmd:{name}", "program": "slurmd", "pid": _pid_from(pid_file)}

    def stop_node(self, name: str, wait_s: float = 10) -> None:
        """Stop one node's slurmd (a node that is really gone: nothing of it can re-register)."""
        st = self._running_state()
        proc = next((p for p in st["processes"] if p["name"] == f"slurmd:{name}"), None)
        if proc is None:
            raise BackendError(f"no slurmd of {name} runs in the lab under {self.opt.base}")
        _stop(proc, wait_s)
        st["processes"].remove(proc)
        self.state_file.write_text(json.dumps(st, indent=1))

    def start_node(self, name: str) -> None:
        """Start one node's slurmd again (after stop_node)."""
        st = self._running_state()
        if name not in st["nodes"] or any(p["name"] == f"slurmd:{name}" for p in st["processes"]):
            raise BackendError(f"{name} is not a stopped node of the lab under {self.opt.base}")
        st["processes"].append(self._start_slurmd(name, slurm_env(self.opt.base)))
        self.state_file.write_text(json.dumps(st, indent=1))

    def _running_state(self) -> dict:
        st = self.load_state()
        if not st:
            raise BackendError(f"no lab is up under {self.opt.base}")
        return st

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
        out = {"up": all(alive.values()) and bool(alive), "base": st["base"], "slurm": st.get("slurm", "22.05"),
               "slurm_conf": st["slurm_conf"], "nodes": len(st["nodes"]), "processes_alive": sum(alive.values()),
               "processes": len(alive), "dead": [n for n, a in alive.items() if not a]}
        if st.get("chroot"):
            out |= {"chroot": st["chroot"], "path": st.get("path"), "mounts": len(st.get("mounts", []))}
        if alive.get("slurmctld"):
            try:
                out["sinfo"] = _run(["sinfo", "-h", "-o", "%T %D"], slurm_env(Path(st["base"])), timeout=10).split("\n")
            except BackendError as exc:
                out["sinfo_error"] = str(exc)
        return out

    def _cancel_jobs(self, env: dict[str, str], wait_s: float = 10) -> None:
        """Cancel the lab's jobs first: their slurmstepd and job processes outlive a stopped slurmd."""
        try:
            ids = _run(["squeue", "-h", "-o", "%i"], env, timeout=10).split()
            if ids:
                _run(["scancel", "--full", *ids], env, timeout=10)
            deadline = time.monotonic() + wait_s
            while ids and time.monotonic() < deadline:
                time.sleep(0.2)
                ids = _run(["squeue", "-h", "-o", "%i"], env, timeout=10).split()
        except BackendError as exc:  # best effort: stopping the daemons comes first
            log.warning("could not cancel the lab's jobs before stopping it: %s", exc)

    def _end_steps(self, whose: str) -> None:
        ended = end_leftover_steps(self.opt.base, self.root)
        if ended:
            log.warning("ended %d job step process(es) %s left under %s (its jobs could not be cancelled)",
                        ended, whose, self.opt.base)

    def down(self, wait_s: float = 15) -> list[str]:
        """Stop what `up` started (slurmd, then slurmctld, then munged if we started it), by pid; then
        undo the chroot's mounts."""
        st = self.load_state()
        if not st:
            return []
        order = sorted(st["processes"], key=lambda p: {"slurmd": 0, "slurmctld": 1, "munged": 2}[p["program"]])
        if any(p["program"] == "slurmctld" and _alive(p["pid"], "slurmctld") for p in order):
            self._cancel_jobs(slurm_env(Path(st["base"])))
        stopped = [p["name"] for p in order if _alive(p["pid"], p["program"])]
        for p in order:  # SIGTERM to all first, so they stop in parallel
            _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        for p in order:
            _stop(p, max(deadline - time.monotonic(), 0.0))
        self._end_steps("this lab")
        stuck = unmount(st.get("mounts", []))
        if stuck:
            raise BackendError(f"the lab's processes stopped but {', '.join(stuck)} would not unmount; "
                               f"try `umount -R` on them")
        self.state_file.unlink(missing_ok=True)
        return stopped
