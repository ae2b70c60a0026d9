#!/usr/bin/env python3
"""Benchmark: the submit-time hook's cost and the daemon's decision time.

1. sbatch latency without the hook and with job_submit.lua asking `placer serve` (advise mode), on a
   real lab (needs root and Debian's Slurm packages: scripts/install-slurm-lab.sh). Jobs are submitted
   held (-H) so the lab does not fill; median and p99 over --submits each. Target: +<= 5 ms median.
2. The daemon's decision time on the 221,184-GPU preset at 80% busy (bench/states.py), in process and
   over its unix socket, for a submit mix (half 1-8 GPU jobs, half 2-128 whole nodes). Target p99 <= 10 ms.

    .venv/bin/python bench/hook.py [--submits 200] [--skip-lab]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from states import MULTI_NODE_SIZES, MULTI_NODE_WEIGHTS, SMALL_GPUS, SMALL_WEIGHTS, fragmented_state  # noqa: E402

from plugins.backend import SlurmNode, SlurmSnapshot  # noqa: E402
from plugins.lab import Lab, LabOptions  # noqa: E402
from plugins.serve import Daemon, ServeConfig, serve  # noqa: E402
from topology import ClusterState, dump_inventory  # noqa: E402
from topology.generate import design_for, generate  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def sbatch_latency(env: dict[str, str], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        subprocess.run(["sbatch", "-H", "-J", f"bench{i}", "--gres=gpu:1", "--output=/dev/null", "--wrap", "true"],
                       env=env, check=True,
                       capture_output=True)
        out.append(time.perf_counter() - t)
    subprocess.run(["scancel", "-u", "root"], env=env, capture_output=True)
    return out


def lab_part(submits: int) -> bool:
    base = Path("/var/lib/placer-lab-bench")
    sock = Path("/run/placer-bench/placer.sock")
    fabric = generate(design_for("tiny"))
    results = {}
    for hook in (False, True):
        lab = Lab(LabOptions(base=base, ctld_port=17017, slurmd_port=17501, hook=hook, socket_path=sock))
        lab.down()
        lab.up(fabric)
        env = {**os.environ, "SLURM_CONF": str(base / "etc" / "slurm.conf")}
        daemon = None
        try:
            if hook:
                inv = base / "inventory.yaml"
                inv.write_text(dump_inventory(fabric))
                daemon = subprocess.Popen([sys.executable, "-c", "from cli.main import entry; entry()", "serve",
                                           "--inventory", str(inv), "--socket", str(sock)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(100):
                    if sock.exists():
                        break
                    time.sleep(0.1)
            sbatch_latency(env, 10)  # warm-up
            results[hook] = sbatch_latency(env, submits)
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(10)
            lab.down()
    off, on = results[False], results[True]
    d = statistics.median(on) - statistics.median(off)
    print(f"sbatch latency over {submits} submits (ms)        median     p99")
    print(f"  without the hook                         {statistics.median(off) * 1e3:7.2f} {pct(off, 99) * 1e3:7.2f}")
    print(f"  with job_submit.lua -> placer serve      {statistics.median(on) * 1e3:7.2f} {pct(on, 99) * 1e3:7.2f}")
    ok = d <= 0.005
    verdict = "meets" if ok else "MISSES"
    print(f"  added by the hook                        {d * 1e3:+7.2f}           [{verdict} <= +5 ms]")
    return ok


class _NoSlurm:
    name = "none"

    def snapshot(self) -> SlurmSnapshot:
        return SlurmSnapshot((), ())

    def node_states(self) -> list[SlurmNode]:
        return []

    def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
        raise RuntimeError("read-only fake: the daemon never pins")

    def release(self, job_id: int) -> None:
        raise RuntimeError("read-only fake: the daemon never releases")

    def start_now(self, job_id: int) -> None:
        raise RuntimeError("read-only fake: the daemon never changes begin times")


class _SteadyDaemon(Daemon):
    """Answers every submit against the same fragmented state (its reservations are undone after each
    answer, inside the measured time, so the figures are if anything pessimistic)."""

    base: ClusterState | None = None

    def refresh(self) -> None:
        if self.base is not None:
            with self.lock:
                self.state = self.base.copy()

    def decide(self, req: Any) -> dict[str, Any]:
        answer = super().decide(req)
        with self.lock:
            assert self.base is not None
            self.state = self.base.copy()
            self.reservations = []
        return answer


def _daemon_process(preset: str, sock: str, ready) -> None:
    fabric = generate(design_for(preset))
    daemon = _SteadyDaemon(fabric, _NoSlurm(), ServeConfig(socket_path=Path(sock), socket_group="root",
                                                           refresh_s=3600))
    daemon.base = fragmented_state(fabric, 0.80, 0)
    serve(daemon, ready)


def daemon_part(preset: str, n: int) -> bool:
    import multiprocessing as mp

    fabric = generate(design_for(preset))
    base_state = fragmented_state(fabric, 0.80, 0)
    rng = np.random.default_rng(7)
    reqs = []
    for i in range(n):
        if rng.random() < 0.5:
            gpus = int(rng.choice(SMALL_GPUS, p=SMALL_WEIGHTS))
            reqs.append({"v": 1, "name": f"s{i}", "tres_per_node": f"gres:gpu:{gpus}"})
        else:
            nodes = int(rng.choice(MULTI_NODE_SIZES, p=MULTI_NODE_WEIGHTS / MULTI_NODE_WEIGHTS.sum()))
            reqs.append({"v": 1, "name": f"m{i}", "tres_per_node": "gres:gpu:8", "min_nodes": nodes, "shared": 0})
    # in process: the decision alone
    daemon = _SteadyDaemon(fabric, _NoSlurm(), ServeConfig(refresh_s=3600))
    daemon.base = base_state
    daemon.refresh()
    inproc = []
    for req in reqs:
        t = time.perf_counter()
        Daemon.decide(daemon, req)
        inproc.append(time.perf_counter() - t)
        daemon.refresh()
    # over the socket, the daemon in its own process as in production
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "p.sock")
        ctx = mp.get_context("fork")
        ready = ctx.Event()
        proc = ctx.Process(target=_daemon_process, args=(preset, sock, ready), daemon=True)
        proc.start()
        if not ready.wait(120):
            raise SystemExit("daemon did not start")
        trip = []
        for req in reqs:
            t = time.perf_counter()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                buf += s.recv(65536)
            s.close()
            trip.append(time.perf_counter() - t)
        proc.terminate()
        proc.join(10)
    print(f"\ndaemon decision time on {preset} ({fabric.total_gpus:,} GPUs, 80% busy), {n} submits (ms)"
          "   p50     p99     max")
    print(f"  in process                                                      {pct(inproc, 50) * 1e3:6.2f} "
          f"{pct(inproc, 99) * 1e3:7.2f} {max(inproc) * 1e3:7.2f}")
    ok = pct(trip, 99) <= 0.010
    print(f"  over the unix socket, daemon in its own process                 {pct(trip, 50) * 1e3:6.2f} "
          f"{pct(trip, 99) * 1e3:7.2f} {max(trip) * 1e3:7.2f}   [{'meets' if ok else 'MISSES'} p99 <= 10 ms]")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submits", type=int, default=200)
    ap.add_argument("--decisions", type=int, default=500)
    ap.add_argument("--preset", default="colossus-200k")
    ap.add_argument("--skip-lab", action="store_true", help="Only the daemon part (no root or Slurm needed).")
    args = ap.parse_args()
    ok = True
    if not args.skip_lab:
        if os.geteuid() != 0 or not Path("/usr/sbin/slurmctld").exists():
            print("sbatch latency: skipped (needs root and Slurm: bash scripts/install-slurm-lab.sh)")
        else:
            ok &= lab_part(args.submits)
    ok &= daemon_part(args.preset, args.decisions)
    print(f"\n{'all targets met' if ok else 'SOME TARGETS MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
