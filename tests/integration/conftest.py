"""A real Slurm lab for integration tests: started once per session, stopped by pid.

Skipped, saying why, when not root or when Debian's Slurm packages are absent (CI installs them).
The lab uses its own directory, ports and socket so it never collides with a developer's lab.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from plugins.lab import Lab, LabOptions
from plugins.slurm_cli import SlurmCliBackend, subprocess_runner
from topology import dump_inventory
from topology.generate import design_for, generate
from topology.hostlists import expand

BASE = Path("/var/lib/placer-lab-test")
SOCKET = Path("/run/placer-test/placer.sock")
PLACER = [sys.executable, "-c", "from cli.main import entry; entry()"]
T = TypeVar("T")


def lab_available() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (they start munged, slurmctld and slurmd)"
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
        self.fabric = generate(design_for("tiny", pods=2, sus_per_pod=2, nodes_per_su=8, rails=0))

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(list(cmd), capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {done.stderr}")
        return done

    def placer(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run(*PLACER, *args, check=check, timeout=timeout)

    def sbatch(self, *args: str) -> int:
        # job output goes to the lab's log directory, never into the working tree
        out = self.run("sbatch", "--parsable", f"--output={BASE}/log/job-%j.out", *args,
                       "--wrap", "sleep 300").stdout.strip()
        return int(out.split(";")[0])

    def squeue(self) -> list[dict]:
        return json.loads(self.run("squeue", "--json").stdout)["jobs"]

    def jobs_by_id(self) -> dict[int, dict]:
        return {j["job_id"]: j for j in self.squeue()}

    def clean(self, timeout_s: float = 60) -> None:
        """Cancel every job, undrain every node, wait until all nodes are idle."""
        self.run("scancel", "--full", "-u", "root", check=False)
        deadline = time.monotonic() + timeout_s
        live = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED"}
        while time.monotonic() < deadline:
            if not [j for j in self.squeue() if j["job_state"] in live]:
                break
            time.sleep(0.3)
        names = ",".join(self.fabric.node_names)
        self.run("scontrol", "update", f"NodeName={names}", "State=RESUME", check=False)
        while time.monotonic() < deadline:
            states = self.run("sinfo", "-h", "-N", "-o", "%T").stdout.split()
            if states and all(s == "idle" for s in states):
                return
            time.sleep(0.3)
        raise AssertionError("lab nodes did not come back to idle")

    def ctld_log(self) -> str:
        return (BASE / "log" / "slurmctld.log").read_text(errors="replace")


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
    return SlurmCliBackend(subprocess_runner(lab.env["SLURM_CONF"]))


def running_nodes(lab: LabHandle, job_id: int, timeout_s: float = 30) -> list[str]:
    """The job's nodes once it runs (sorted names); fails saying why Slurm kept it pending."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        j = lab.jobs_by_id().get(job_id)
        if j and j["job_state"] == "RUNNING":
            return sorted(expand(j["nodes"]))
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not start: {lab.jobs_by_id().get(job_id, {}).get('state_reason')}")


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[LabHandle]:
    why = lab_available()
    if why:
        pytest.skip(why)
    opt = LabOptions(base=BASE, ctld_port=16917, slurmd_port=17301, socket_path=SOCKET, hook_budget_s=0.05)
    lab = Lab(opt)
    lab.down()  # a lab left behind by a killed earlier run of these tests (same dir: ours)
    inv = tmp_path_factory.mktemp("lab") / "inventory.yaml"
    handle = LabHandle(lab, inv, {**os.environ, "SLURM_CONF": str(BASE / "etc" / "slurm.conf")})
    inv.write_text(dump_inventory(handle.fabric))
    lab.up(handle.fabric)
    try:
        yield handle
    finally:
        lab.down()


class DaemonProc:
    def __init__(self, lab: LabHandle, *args: str) -> None:
        self.log = BASE / "log" / f"serve-{time.time_ns()}.log"
        self.fh = self.log.open("w")
        self.proc = subprocess.Popen([*PLACER, "serve", "--inventory", str(lab.inventory), "--socket", str(SOCKET),
                                      "--refresh-s", "1", *args], stdout=self.fh, stderr=subprocess.STDOUT,
                                     env=lab.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"placer serve exited: {self.log.read_text()}")
            if SOCKET.exists() and "placer serve:" in self.log.read_text():
                return
            time.sleep(0.1)
        raise AssertionError(f"placer serve did not start: {self.log.read_text()}")

    def ask(self, req: dict) -> dict:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(SOCKET))
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
        def seen() -> dict | None:
            st = self.state()
            return st if check(st) else None

        return wait_until(f"the daemon to see {what}", seen, timeout_s)

    def decisions(self) -> dict[str, dict]:
        return {d["name"]: d for d in self.ask({"v": 1, "op": "decisions"})["decisions"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.fh.close()


@pytest.fixture
def daemon_factory(lab: LabHandle):
    started: list[DaemonProc] = []

    def start(*args: str) -> DaemonProc:
        d = DaemonProc(lab, *args)
        started.append(d)
        return d

    lab.clean()
    yield start
    for d in started:
        d.stop()
    if SOCKET.exists():
        SOCKET.unlink()
    lab.clean()
