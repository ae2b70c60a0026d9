"""A real Slurm lab for integration tests: started once per session, stopped by pid.

Skipped, saying why, when not root or when Debian's Slurm packages are absent (CI installs them).
The lab uses its own directory, ports and socket so it never collides with a developer's lab.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from plugins.backend import SlurmJob
from plugins.lab import Lab, LabOptions, hook_text, slurm_env
from plugins.lab_chroot import RELEASES, chroot_ready
from plugins.slurm_cli import CONTROLLER_STALLED, SlurmCliBackend, parse_squeue_json, read_only, run_command, stalled
from topology import dump_inventory
from topology.generate import design_for, generate

# per Slurm version: own directory, ports and socket (the 22.05 ones keep their historical names)
LAB_PORTS = {"22.05": (16917, 17301), "24.11": (16927, 20301), "26.05": (16937, 23301)}
PLACER = [sys.executable, "-c", "from cli.main import entry; entry()"]
T = TypeVar("T")
# a loaded 2-core CI machine stalls 24.11's controller in its chroot now and then (sinfo timed out once in
# 40 minutes): the lab's own commands that do the same when run twice are run again, on either stall shape
# the product knows (plugins.slurm_cli.stalled: 24.11/26.05's exit 1, 22.05's exit 0 with errno -1 in JSON)
STALLED = CONTROLLER_STALLED


def _idempotent(cmd: tuple[str, ...]) -> bool:
    """A command that does the same when run twice, so it may be run again after a stall (never sbatch):
    the queries the product repeats too, and the lab's own cancels and node updates."""
    return read_only(list(cmd)) or cmd[:1] == ("scancel",) or cmd[:2] == ("scontrol", "update")


def lab_paths(version: str) -> tuple[Path, Path]:
    """The lab's directory and the hook's socket for one Slurm version."""
    suffix = "" if version == "22.05" else f"-{version}"
    return Path(f"/var/lib/placer-lab-test{suffix}"), Path(f"/run/placer-test{suffix}/placer.sock")


def lab_available(version: str) -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (they start munged, slurmctld and slurmd)"
    if version not in RELEASES:
        raise pytest.UsageError(f"--slurm {version}: the lab runs {', '.join(RELEASES)}")
    if RELEASES[version].suite is not None:
        # a chroot: made on first use (debootstrap); everything else lives inside it
        if not chroot_ready(RELEASES[version]) and shutil.which("debootstrap") is None:
            return f"Slurm {version} runs in a chroot made with debootstrap: apt-get install -y debootstrap"
        return None
    for exe in ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"):
        if not Path(exe).exists():
            return f"{exe} is absent: apt-get install -y munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins lua-socket lua-cjson"
    for mod in ("socket", "cjson"):
        if not list(Path("/usr/share/lua/5.1").glob(f"{mod}*")) and not list(Path("/usr/lib/x86_64-linux-gnu/lua/5.1").glob(f"{mod}*")):
            return f"Lua module {mod} is absent: apt-get install -y lua-socket lua-cjson"
    return None


class LabHandle:
    def __init__(self, lab: Lab, inventory: Path, env: dict[str, str]) -> None:
        self.lab, self.inventory, self.env = lab, inventory, env
        self.version = lab.opt.slurm
        self.base, self.socket = lab.opt.base, lab.opt.socket_path
        self.fabric = generate(design_for("tiny", pods=2, sus_per_pod=2, nodes_per_su=8, rails=0))

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        for _ in range(3):
            done = subprocess.run(list(cmd), capture_output=True, encoding="utf-8", errors="replace", env=self.env,
                                  timeout=timeout)  # (a job name may be any bytes: as placer reads Slurm)
            if not stalled(done) or not _idempotent(cmd):
                break
            time.sleep(3)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {done.stderr}")
        return done

    def as_user(self, user: str, *cmd: str) -> subprocess.CompletedProcess:
        """A Slurm client run as another user (in a chroot lab: the chroot's own client, as that user)."""
        if self.lab.root is None:
            return self.run("runuser", "-u", user, "--", *cmd)
        return self.run("chroot", f"--userspec={user}:nogroup", str(self.lab.root), "/bin/sh", "-c", 'cd /tmp; exec "$@"',
                        "as-user", f"/usr/bin/{cmd[0]}", *cmd[1:])

    def placer(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run(*PLACER, *args, check=check, timeout=timeout)

    def sbatch(self, *args: str) -> int:
        # job output goes to the lab's log directory, never into the working tree
        out = self.run("sbatch", "--parsable", f"--output={self.base}/log/job-%j.out", *args,
                       "--wrap", "sleep 300").stdout.strip()
        return int(out.split(";")[0])

    def squeue(self) -> list[SlurmJob]:
        # through our own parser: the raw JSON differs between Slurm versions (job_state a word or a list)
        return parse_squeue_json(self.run("squeue", "--json").stdout)

    def jobs_by_id(self) -> dict[int, SlurmJob]:
        return {j.job_id: j for j in self.squeue()}

    def clean(self, timeout_s: float = 60) -> None:
        """Cancel every job, undrain every node, wait until all nodes are idle."""
        ids = [str(j.job_id) for j in self.squeue()]  # every user's (some tests submit as nobody)
        if ids:
            self.run("scancel", "--full", *ids, check=False)
        deadline = time.monotonic() + timeout_s
        live = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED"}
        while time.monotonic() < deadline:
            if not [j for j in self.squeue() if j.state in live]:
                break
            time.sleep(0.3)
        # Slurm's reservations (kept from test to test; one with jobs cannot be deleted till they end)
        for line in self.run("scontrol", "show", "reservation", "--oneliner").stdout.splitlines():
            if line.startswith("ReservationName="):
                self.run("scontrol", "delete", line.split()[0], check=False)
        names = ",".join(self.fabric.node_names)
        self.run("scontrol", "update", f"NodeName={names}", "State=RESUME", check=False)
        while time.monotonic() < deadline:
            states = self.run("sinfo", "-h", "-N", "-o", "%T").stdout.split()
            if states and all(s == "idle" for s in states):
                return
            time.sleep(0.3)
        raise AssertionError("lab nodes did not come back to idle")

    @contextlib.contextmanager
    def hook_budget(self, seconds: float) -> Iterator[None]:
        """job_submit.lua with another budget for a while (slurmctld reads the script at each submit)."""
        script = self.base / "etc" / "job_submit.lua"
        script.write_text(hook_text(dataclasses.replace(self.lab.opt, hook_budget_s=seconds)))
        try:
            yield
        finally:
            script.write_text(hook_text(self.lab.opt))

    def ctld_log(self) -> str:
        return (self.base / "log" / "slurmctld.log").read_text(errors="replace")


def wait_until(what: str, check: Callable[[], T | None], timeout_s: float = 30, every_s: float = 0.1) -> T:
    """Poll `check` until it returns something truthy (returned) or the deadline passes (fails, naming `what`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def backend(lab: LabHandle) -> SlurmCliBackend:
    """The CLI backend in the lab's environment (SLURM_CONF, and PATH to a chroot's own clients)."""
    return SlurmCliBackend(lambda cmd: run_command(cmd, lab.env))


def running_nodes(lab: LabHandle, job_id: int, timeout_s: float = 30) -> list[str]:
    """The job's nodes once it runs (sorted names); fails saying why Slurm kept it pending."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        j = lab.jobs_by_id().get(job_id)
        if j and j.state == "RUNNING":
            return sorted(j.nodes)
        time.sleep(0.2)
    last = lab.jobs_by_id().get(job_id)
    raise AssertionError(f"job {job_id} did not start: {last.reason if last else 'it is gone'}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the lab runs once per Slurm version of --slurm (one lab at a time)."""
    if "lab" in metafunc.fixturenames:
        versions = [v.strip() for v in metafunc.config.getoption("--slurm").split(",") if v.strip()]
        metafunc.parametrize("lab", versions, indirect=True, scope="session")


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    version = request.param
    why = lab_available(version)
    if why:
        pytest.skip(why)
    base, sock = lab_paths(version)
    ctld_port, slurmd_port = LAB_PORTS[version]
    # a short back-off: tests start daemons right after others failed open (its own tests are stand-alone)
    opt = LabOptions(base=base, slurm=version, ctld_port=ctld_port, slurmd_port=slurmd_port, socket_path=sock,
                     hook_budget_s=0.05, hook_backoff_s=0.2)
    lab = Lab(opt)
    lab.down()  # a lab left behind by a killed earlier run of these tests (same dir: ours)
    inv = tmp_path_factory.mktemp("lab") / "inventory.yaml"
    handle = LabHandle(lab, inv, slurm_env(base))
    inv.write_text(dump_inventory(handle.fabric))
    lab.up(handle.fabric)
    handle.env = slurm_env(base)  # PATH now includes the chroot's client wrappers (made by up)
    try:
        yield handle
    finally:
        lab.down()


class DaemonProc:
    def __init__(self, lab: LabHandle, *args: str) -> None:
        self.socket = lab.socket
        self.log = lab.base / "log" / f"serve-{time.time_ns()}.log"
        self.fh = self.log.open("w")
        self.proc = subprocess.Popen([*PLACER, "serve", "--inventory", str(lab.inventory), "--socket", str(lab.socket),
                                      "--refresh-s", "1", *args], stdout=self.fh, stderr=subprocess.STDOUT,
                                     env=lab.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fh.close()
                raise AssertionError(f"placer serve exited: {self.log.read_text()}")
            if self.socket.exists() and "placer serve:" in self.log.read_text():
                return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"placer serve did not start: {self.log.read_text()}")

    def ask(self, req: dict) -> dict:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(self.socket))
        s.sendall((json.dumps(req) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return json.loads(data)

    def state(self) -> dict:
        return self.ask({"v": 1, "op": "state"})

    def sees(self, what: str, check: Callable[[dict], bool], timeout_s: float = 30) -> dict:
        """Wait until the daemon's state (refreshed from Slurm) satisfies `check`."""
        last: list[dict] = []

        def seen() -> dict | None:
            st = self.state()
            last[:] = [st]
            return st if check(st) else None

        try:
            return wait_until(f"the daemon to see {what}", seen, timeout_s)
        except AssertionError as exc:  # what it saw last, and what it logged, to tell a slow daemon from Slurm's state
            tail = self.log.read_text(errors="replace").splitlines()[-20:]
            raise AssertionError(f"{exc}; it saw last {last[:1]}; its log ends:\n" + "\n".join(tail)) from None

    def decisions(self) -> dict[str, dict]:
        return {d["name"]: d for d in self.ask({"v": 1, "op": "decisions"})["decisions"]}

    def stop(self) -> str | None:
        """Stopped and reaped (else its Popen warns when collected, failing a later test); what went wrong."""
        said = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                said = f"placer serve ignored SIGTERM for 10 s; its log ends:\n{self.log.read_text()[-2000:]}"
        self.fh.close()
        return said


@pytest.fixture
def daemon_factory(lab: LabHandle):
    started: list[DaemonProc] = []

    def start(*args: str) -> DaemonProc:
        d = DaemonProc(lab, *args)
        started.append(d)
        return d

    lab.clean()
    yield start
    said = [e for e in (d.stop() for d in started) if e]
    lab.socket.unlink(missing_ok=True)
    lab.clean()
    assert not said, said[0]
