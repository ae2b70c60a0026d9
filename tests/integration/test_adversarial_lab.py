"""Issue 15's adversarial run, on a real lab of every --slurm version: 1,000 submits mixing GPU models,
-w, -x, -C, partitions and CPU-only jobs, while placer's daemon is well, killed (a stale socket left
behind), hung (SIGSTOP), answering junk, answering well-formed wrong answers, and running on another
cluster's inventory. Afterwards, for every job: sbatch succeeded; it is not pending on a constraint
(BadConstraints, ReqNodeNotAvail, partition limits); the nodes it runs on, or that it was advised,
satisfy everything the user asked (partition, model, features, -x) and were not drained.

The cluster (its own lab beside the suite's, so the suite's fabric stays simple):
  gb[01-08]   4 x gb200, features gb200,nvl     leaves gb[01-04], gb[05-08]
  l40s[1-8]   4 x l40s,  feature l40s           leaves l40s[1-4], l40s[5-8]
  partitions  gpu (all, default), gbonly (gb[01-08]), half (gb[05-08],l40s[1-4]); gb08 drained.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plugins.lab import Lab, LabOptions, slurm_env
from plugins.slurm_cli import parse_squeue_json
from topology import load_inventory_text

from .conftest import PLACER, STALLED, lab_available
from .test_slurm_lab import WRONG_ANSWERS, _fake_daemon

pytestmark = pytest.mark.lab

INVENTORY = """\
version: 1
name: mixed
node_types:
  gb: {gpus: 4, gpu_model: gb200, features: [gb200, nvl]}
  l40s: {gpus: 4, gpu_model: l40s, features: [l40s]}
nodes:
- {names: 'gb[01-08]', type: gb}
- {names: 'l40s[1-8]', type: l40s}
switches:
- {name: core}
- {name: leaf1, parent: core, nodes: 'gb[01-04]'}
- {name: leaf2, parent: core, nodes: 'gb[05-08]'}
- {name: leaf3, parent: core, nodes: 'l40s[1-4]'}
- {name: leaf4, parent: core, nodes: 'l40s[5-8]'}
"""
WRONG_INVENTORY = INVENTORY.replace("gpu_model: l40s", "gpu_model: a100")
GB = [f"gb{i:02d}" for i in range(1, 9)]
L40S = [f"l40s{i}" for i in range(1, 9)]
MODEL_NODES = {"gb200": set(GB), "l40s": set(L40S)}
FEATURES = {**{n: {"gb200", "nvl"} for n in GB}, **{n: {"l40s"} for n in L40S}}
PARTITIONS = {"gpu": set(GB + L40S), "gbonly": set(GB), "half": set(GB[4:] + L40S[:4])}
DRAINED = "gb08"
PORTS = {"22.05": (16947, 26301), "24.11": (16957, 27301), "26.05": (16967, 28301)}
# reasons no job may wait for: constraints Slurm can never satisfy (22.05 says ReqNodeNotAvail for a
# required node that is merely busy too, so that one is checked by letting the jobs run, below)
NEVER = ("BadConstraints", "PartitionConfig", "PartitionNodeLimit", "InvalidQOS")
SUBMITS = 1000


@dataclass
class Ask:
    """One submission and what the user asked of it, to check against what happened."""
    args: list[str]
    partition: str = "gpu"
    model: str | None = None  # GPU model asked for (None: any, or no GPU)
    feature_sets: list[set[str]] = field(default_factory=list)  # allowed feature sets (OR of ANDs); [] any
    exclude: set[str] = field(default_factory=set)
    nodelist: str = ""
    job_id: int = 0
    phase: str = ""
    index: int = 0
    stalls: int = 0  # times the controller did not answer its sbatch in time (see _sbatch)

    @property
    def name(self) -> str:
        return f"adv-{self.phase}-{self.index}"

    def allowed(self) -> set[str]:
        nodes = PARTITIONS[self.partition] - self.exclude
        if self.model:
            nodes &= MODEL_NODES[self.model]
        if self.feature_sets:
            nodes = {n for n in nodes if any(fs <= FEATURES[n] for fs in self.feature_sets)}
        return nodes


def random_ask(rng: random.Random) -> Ask:
    """A submission Slurm itself accepts: every combination is satisfiable by at least one node."""
    while True:
        a = Ask([])
        a.partition = rng.choice(["gpu", "gpu", "gbonly", "half"])
        if a.partition != "gpu" or rng.random() < 0.3:
            a.args += ["-p", a.partition]
        kind = rng.choice(["gres", "gres-model", "gpus-model", "per-task", "cpu", "gres-model"])
        models = ["gb200"] if a.partition == "gbonly" else ["gb200", "l40s"]
        a.model = rng.choice(models) if kind in ("gres-model", "gpus-model", "per-task") else None
        n = rng.choice([1, 1, 2, 4])
        multi = kind not in ("per-task", "cpu") and rng.random() < 0.2
        if kind == "gres":
            a.args.append(f"--gres=gpu:{n}")
        elif kind == "gres-model":
            a.args.append(f"--gres=gpu:{a.model}:{n}")
        elif kind == "gpus-model":  # per job: at least one per node
            a.args.append(f"--gpus={a.model}:{max(n, 2) if multi else n}")
        elif kind == "per-task":
            a.args += ["-n", str(max(n // 2, 1)), f"--gpus-per-task={a.model}:{min(n, 2)}"]
        if multi:
            a.args += ["-N", "2", "--exclusive"]
        r = rng.random()
        if r < 0.15:
            c = rng.choice(["gb200", "l40s", "gb200|l40s", "[gb200|l40s]", "nvl&gb200"])
            a.args += ["-C", c]
            a.feature_sets = [set(alt.split("&")) for alt in c.strip("[]").split("|")]
        if rng.random() < 0.15:
            a.exclude = set(rng.sample(sorted(PARTITIONS[a.partition]), 2))
            a.args += ["-x", ",".join(sorted(a.exclude))]
        usable = a.allowed() - {DRAINED}
        if len(usable) < (2 if "-N" in a.args else 1):
            continue
        if rng.random() < 0.1 and "-N" not in a.args:
            a.nodelist = rng.choice(sorted(usable))
            a.args += ["-w", a.nodelist]
        return a


@pytest.fixture(scope="module")
def mixed_lab(request: pytest.FixtureRequest, lab) -> Iterator[tuple[Lab, dict[str, str], Path]]:
    """Its own lab of the suite's Slurm version (the `lab` fixture gives the version and is left alone)."""
    version = lab.version
    why = lab_available(version)
    if why:
        pytest.skip(why)
    suffix = "" if version == "22.05" else f"-{version}"
    base, sock = Path(f"/var/lib/placer-lab-adversarial{suffix}"), Path(f"/run/placer-adversarial{suffix}/placer.sock")
    opt = LabOptions(base=base, slurm=version, ctld_port=PORTS[version][0], slurmd_port=PORTS[version][1],
                     socket_path=sock, hook_budget_s=0.05, hook_backoff_s=0.2,
                     extra_conf=("PartitionName=gbonly Nodes=gb[01-08] State=UP MaxTime=INFINITE",
                                 "PartitionName=half Nodes=gb[05-08],l40s[1-4] State=UP MaxTime=INFINITE"))
    fabric, _ = load_inventory_text(INVENTORY)
    mixed = Lab(opt)
    mixed.down()
    mixed.up(fabric)
    env = slurm_env(base)
    inv = base / "inventory.yaml"
    inv.write_text(INVENTORY)
    (base / "wrong.yaml").write_text(WRONG_INVENTORY)
    subprocess.run(["scontrol", "update", f"NodeName={DRAINED}", "State=DRAIN", "Reason=adversarial"], env=env,
                   check=True, capture_output=True)
    try:
        yield mixed, env, inv
    finally:
        mixed.down()


MAX_STALLS = SUBMITS // 100  # a hook that held the controller up would stall far more submits than this


def _sbatch(env: dict[str, str], base: Path, a: Ask) -> tuple[int, str]:
    """Submit `a` under its own name; when the controller did not answer in time (a loaded 2-core CI
    machine stalls 24.11's now and then: scancel timed out too), the job is looked up by that name and
    submitted again only if it is not there. The stall is counted in `a.stalls`; sbatch's own answer
    otherwise."""
    # 8 of a node's 16 CPUs each: at most two jobs run per node, so that cancelling them all at the end is
    # quick on every version (24.11 in its chroot takes minutes to end a hundred running jobs)
    cmd = ["sbatch", "--parsable", f"--output={base}/log/adv-%j.out", "-J", a.name, "-c", "8", *a.args,
           "--wrap", "sleep 900"]
    for _ in range(3):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return int(done.stdout.strip().split(";")[0]), ""
        if not any(s in done.stderr for s in STALLED):
            break
        a.stalls += 1
        time.sleep(5)
        there = subprocess.run(["squeue", "-h", "-n", a.name, "-o", "%i"], env=env, capture_output=True,
                               text=True, timeout=120).stdout.split()
        if there:
            return int(there[0]), ""
    return 0, done.stderr.strip()


class Phase:
    """What answers the hook during one part of the run."""

    def __init__(self, name: str, env: dict[str, str], base: Path, sock: Path, inv: Path) -> None:
        self.name, self.env, self.base, self.sock, self.inv = name, env, base, sock, inv
        self.proc: subprocess.Popen | None = None
        self.fake: tuple[Any, Any] | None = None
        self.logs: list[Any] = []

    def _serve(self, inventory: Path) -> subprocess.Popen:
        log = (self.base / "log" / f"serve-{self.name}.log").open("w")
        self.logs.append(log)
        proc = subprocess.Popen([*PLACER, "serve", "--inventory", str(inventory), "--socket", str(self.sock),
                                 "--refresh-s", "1"], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 30
        while not (self.sock.exists() and "placer serve:" in (self.base / "log" / f"serve-{self.name}.log").read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()  # reaped, so its Popen does not warn later (a failure of another test)
                raise AssertionError(f"placer serve ({self.name}) did not start")
            time.sleep(0.1)
        return proc

    def __enter__(self) -> Phase:
        if self.name in ("well", "killed", "hung"):
            self.proc = self._serve(self.inv)
            if self.name == "killed":  # SIGKILL: the socket file stays behind, nobody listens
                self.proc.kill()
                self.proc.wait()
            elif self.name == "hung":
                os.kill(self.proc.pid, signal.SIGSTOP)
        elif self.name == "wrong-inventory":
            self.proc = self._serve(self.base / "wrong.yaml")
        elif self.name == "junk":
            self.fake = _fake_daemon(self.sock, "garbage")
        return self  # wrong-answers: answer_wrong starts each fake

    def answer_wrong(self, k: int) -> None:
        """Cycle the fake daemon through every well-formed wrong answer (and one naming a drained node)."""
        if self.name != "wrong-answers":
            return
        answers = [a for a, _ in WRONG_ANSWERS] + [{"action": "advise", "req_nodes": "gb[01-04]", "min_nodes": 64},
                                                   {"action": "advise", "req_nodes": "x", "min_nodes": 1}]
        self.__exit__()
        self.fake = _fake_daemon(self.sock, json.dumps(answers[k % len(answers)]))

    def __exit__(self, *exc: object) -> None:
        stuck = False
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:  # a daemon that ignores SIGTERM is a failure: said below, cleaned up
                stuck = True
                self.proc.kill()
                self.proc.wait()
        if self.fake is not None:
            srv, stop = self.fake
            stop.set()
            srv.close()
            self.fake = None
        self.sock.unlink(missing_ok=True)
        for log in self.logs:
            log.close()
        self.logs = []
        assert not stuck, f"placer serve ({self.name}) did not stop within 30 s of SIGTERM"


PHASES = ["well", "killed", "hung", "junk", "wrong-answers", "wrong-inventory"]


def test_a_thousand_adversarial_submits_strand_nothing(mixed_lab) -> None:
    mixed, env, inv = mixed_lab
    base, sock = mixed.opt.base, mixed.opt.socket_path
    rng = random.Random(15)
    asks = [random_ask(rng) for _ in range(SUBMITS)]
    for i, a in enumerate(asks):
        a.index = i
    failed: list[str] = []
    per = SUBMITS // len(PHASES)
    for p, name in enumerate(PHASES):
        chunk = asks[p * per:] if p == len(PHASES) - 1 else asks[p * per:(p + 1) * per]
        with Phase(name, env, base, sock, inv) as phase:
            for k in range(0, len(chunk), 25):
                phase.answer_wrong(k // 25)
                batch = chunk[k:k + 25]
                for a in batch:
                    a.phase = name
                with ThreadPoolExecutor(4) as pool:
                    for a, (jid, err) in zip(batch, pool.map(lambda a: _sbatch(env, base, a), batch)):
                        a.job_id = jid
                        if not jid:
                            failed.append(f"{name}: sbatch {' '.join(a.args)}: {err}")
    assert not failed, f"{len(failed)} sbatch failed: {failed[:5]}"
    stalls = sum(a.stalls for a in asks)
    assert stalls <= MAX_STALLS, f"the controller did not answer {stalls} sbatch in time (of {SUBMITS})"
    time.sleep(2)  # let the scheduler look at the last ones
    jobs = {j.job_id: j for j in parse_squeue_json(subprocess.run(["squeue", "--json"], env=env, check=True,
                                                                  capture_output=True, text=True).stdout)}
    problems = []
    for a in asks:
        j = jobs.get(a.job_id)
        if j is None:
            problems.append(f"job {a.job_id} ({a.phase}, {' '.join(a.args)}) is gone; the controller's log of it: "
                            f"{_ctld_lines(base, a.job_id)}")
            continue
        allowed = a.allowed()
        where = set(j.nodes) if j.running else set()
        pinned = set(j.required_nodes) if not a.nodelist else set()
        if where - allowed or pinned - allowed:
            problems.append(f"job {j.job_id} ({a.phase}, {' '.join(a.args)}) on {sorted(where or pinned)}, "
                            f"outside what it asked ({sorted(allowed)})")
        if a.nodelist and j.required_nodes != (a.nodelist,):
            problems.append(f"job {j.job_id} ({a.phase}): its -w {a.nodelist} became {j.required_nodes}")
        if DRAINED in pinned:
            problems.append(f"job {j.job_id} ({a.phase}) was advised the drained {DRAINED}")
        if j.state == "PENDING" and any(r in j.reason for r in NEVER):
            problems.append(f"job {j.job_id} ({a.phase}, {' '.join(a.args)}) pending: {j.reason}")
    counts = {name: sum(1 for a in asks if a.phase == name and a.job_id in jobs and jobs[a.job_id].required_nodes
                        and not a.nodelist) for name in PHASES}
    print(f"adversarial run on Slurm {mixed.opt.slurm}: {len(asks)} submits, none failed ({stalls} waited out a "
          f"stalled controller); jobs with placer's nodes by phase: {counts}")
    assert not problems, f"{len(problems)} problem(s): " + "; ".join(problems[:10])
    assert counts["well"] > 0, "the well daemon advised nothing: the run did not test advice"
    assert all(counts[p] == 0 for p in PHASES if p != "well"), counts
    _every_pinned_job_runs(env, asks, jobs)


def _ctld_lines(base: Path, job_id: int, last: int = 3) -> list[str]:
    """The controller's last lines about one job (why a job is gone: a lost launch, a kill)."""
    log = (base / "log" / "slurmctld.log").read_text(errors="replace").splitlines()
    return [line for line in log if f"JobId={job_id} " in line or line.endswith(f"JobId={job_id}")][-last:]


def _every_pinned_job_runs(env: dict[str, str], asks: list[Ask], jobs: dict) -> None:
    """Nothing placer pinned is stranded: with every other job cancelled, each job on placer's nodes starts
    (each is cancelled once seen running, to make room for the next on the same nodes)."""
    pinned = {a.job_id for a in asks if a.job_id in jobs and jobs[a.job_id].required_nodes and not a.nodelist
              and jobs[a.job_id].state == "PENDING"}
    others = [str(j) for j in jobs if j not in pinned]
    if others:
        subprocess.run(["scancel", *others], env=env, capture_output=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 300
    while pinned - seen and time.monotonic() < deadline:
        now = {j.job_id: j for j in parse_squeue_json(subprocess.run(["squeue", "--json"], env=env, check=True,
                                                                     capture_output=True, text=True).stdout)}
        started = [j for j in pinned - seen if j in now and now[j].running]
        seen.update(started)
        if started:
            subprocess.run(["scancel", *map(str, started)], env=env, capture_output=True)
        time.sleep(0.5)
    stuck = {j: (jobs[j].required_nodes, jobs[j].reason) for j in pinned - seen}
    assert not stuck, f"{len(stuck)} job(s) on placer's nodes never started: {stuck}"
    print(f"every one of the {len(pinned)} pending job(s) on placer's nodes started once the others were gone")
