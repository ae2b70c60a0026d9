"""The daemon's decisions without Slurm: a fake backend feeds it snapshots.

Fabric (tiny preset, rails off):
            core
          /      \\
      p01-spine   p02-spine
       /    \\      /    \\
   su01   su02  su01   su02      4 nodes each: gpu[001-004] ... gpu[013-016]
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cli.serve_cmds import load_serve_config
from plugins.backend import SlurmJob, SlurmNode, SlurmReservation, SlurmSnapshot, to_cluster_state
from plugins.serve import Daemon, ServeConfig, serve
from topology import BackendError, RequestError
from topology.generate import design_for, generate
from topology.hostlists import expand

FABRIC = generate(design_for("tiny", rails=0))


class FakeSlurm:
    name = "fake"

    def __init__(self) -> None:
        self.nodes: list[SlurmNode] = [SlurmNode(n, "up", partitions=("gpu",)) for n in FABRIC.node_names]
        self.jobs: list[SlurmJob] = []
        self.reservations: list[SlurmReservation] = []

    def snapshot(self) -> SlurmSnapshot:
        return SlurmSnapshot(tuple(self.nodes), tuple(self.jobs), reservations=tuple(self.reservations))

    def node_states(self) -> list[SlurmNode]:
        return list(self.nodes)

    def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
        raise AssertionError("read-only fake: the daemon never pins")

    def release(self, job_id: int) -> None:
        raise AssertionError("read-only fake: the daemon never releases")

    def start_now(self, job_id: int) -> None:
        raise AssertionError("read-only fake: the daemon never changes begin times")


def daemon(**kw) -> tuple[Daemon, FakeSlurm]:
    slurm = FakeSlurm()
    d = Daemon(FABRIC, slurm, ServeConfig(**kw))
    d.refresh()
    return d, slurm


def metric(d: Daemon, name: str, **labels: str) -> float:
    """A sample of the daemon's registry, as Prometheus would scrape it; a missing metric fails the test."""
    value = d.metrics.registry.get_sample_value(name, labels or None)
    assert value is not None, f"metric {name}{labels or ''} is not exported"
    return value


def req(name: str, **kw) -> dict:
    return {"v": 1, "name": name, **kw}


def test_a_job_that_cannot_start_at_once_gets_no_advice_but_is_steered() -> None:
    """Advice binds a job to nodes free now; one that waits for another job or a begin time more than a
    minute away would start on nodes busy by then: no advice (and nothing reserved). Steer mode holds it
    (apply places it once Slurm could start it)."""
    d, _ = daemon()
    now = int(time.time())
    gpus = {"tres_per_node": "gres:gpu:8", "min_nodes": 2, "shared": 0}
    a = d.decide(req("a", dependency="afterok:12", **gpus))
    assert a["action"] == "none" and a["reason"].startswith("it waits for its dependency afterok:12: no advice"), a
    b = d.decide(req("b", begin_time=now + 3600, **gpus))
    assert b["action"] == "none" and "it waits for its begin time, in 3" in b["reason"], b
    assert not d.reservations
    assert d.decide(req("c", begin_time=now + 5, dependency="", **gpus))["action"] == "advise"
    s, _ = daemon(mode="steer")
    assert s.decide(req("d", dependency="afterok:12", **gpus))["action"] == "steer"


def test_advise_free_now_sets_req_nodes_and_reserves() -> None:
    d, _ = daemon()
    a = d.decide(req("a", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
    assert a["action"] == "advise" and a["min_nodes"] == 2 and len(expand(a["req_nodes"])) == 2
    b = d.decide(req("b", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
    assert not set(expand(a["req_nodes"])) & set(expand(b["req_nodes"]))  # reserved: never handed out twice
    one = d.decide(req("c", tres_per_job="gres:gpu:1"))
    assert one["action"] == "advise" and one["min_nodes"] == 1


def test_reservation_dropped_once_slurm_shows_the_job() -> None:
    d, slurm = daemon()
    a = d.decide(req("a", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
    nodes = expand(a["req_nodes"])
    assert len(d.reservations) == 2
    slurm.jobs = [SlurmJob(1, "a", "RUNNING", nodes=tuple(nodes), gpu_ids={n: tuple(range(8)) for n in nodes})]
    d.refresh()
    assert d.reservations == [] and all(d.state.free_gpus[FABRIC.node_index[n]] == 0 for n in nodes)


def test_no_room_now_asks_for_the_leaf_bound_with_a_bounded_wait() -> None:
    d, slurm = daemon(max_wait4switch_s=120)
    busy = [f"gpu{i:03d}" for i in range(1, 15)]
    slurm.jobs = [SlurmJob(1, "big", "RUNNING", nodes=tuple(busy), gpu_ids={n: tuple(range(8)) for n in busy})]
    d.refresh()
    a = d.decide(req("wide", tres_per_node="gres:gpu:8", min_nodes=6, shared=0))
    assert a == {"action": "advise", "req_switch": 2, "wait4switch": 120,
                 "reason": "no room now; asks Slurm for 2 leaf switch(es) within 120 s"}


def test_drained_nodes_are_never_advised() -> None:
    d, slurm = daemon()
    slurm.nodes = [SlurmNode(f"gpu{i:03d}", "drain" if i <= 8 else "up", "x", partitions=("gpu",)) for i in range(1, 17)]
    d.refresh()
    for k in range(4):
        a = d.decide(req(f"j{k}", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
        assert all(int(n[3:]) > 8 for n in expand(a["req_nodes"]))


def test_advice_the_validator_refuses_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """A planner answer naming a drained node (a bug, or state changed under it) never reaches the job: it goes
    in unchanged, the refusal is counted and the daemon's nodes stay free; honest answers still pass."""
    import plugins.serve as serve_mod

    d, slurm = daemon()
    slurm.nodes[0] = SlurmNode("gpu001", "drain", "x", partitions=("gpu",))
    d.refresh()
    honest = serve_mod.place_one

    def wrong(ix, state, job, cfg):  # the honest answer, moved onto the drained node
        p = honest(ix, state, job, cfg)
        first = p.nodes[0]
        p.nodes = ["gpu001", *p.nodes[1:]]
        p.gpu_ids = {("gpu001" if n == first else n): ids for n, ids in p.gpu_ids.items()}
        return p

    monkeypatch.setattr(serve_mod, "place_one", wrong)
    free = int(d.state.free_gpus.sum())
    a = d.decide(req("bad", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
    assert a["action"] == "none" and "refused by the validator" in a["reason"] and "gpu001" in a["reason"]
    assert metric(d, "placer_validator_refusals_total") == 1 and int(d.state.free_gpus.sum()) == free
    monkeypatch.setattr(serve_mod, "place_one", honest)
    assert d.decide(req("good", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))["action"] == "advise"
    assert metric(d, "placer_validator_refusals_total") == 1


@pytest.mark.parametrize("request_,reason", [
    (req("cpu"), "no GPUs requested"),
    (req("off", tres_per_job="gres:gpu:2", comment="please placer:off"), "opted out (placer:off in comment)"),
    (req("huge", tres_per_node="gres:gpu:8", min_nodes=99, shared=0), "even with every node free"),
])
def test_jobs_left_alone(request_, reason) -> None:
    d, _ = daemon()
    a = d.decide(request_)
    assert a["action"] == "none" and reason in a["reason"]


def test_partitions_and_steer_mode() -> None:
    d, _ = daemon(partitions=("gpu",))
    assert d.decide(req("x", tres_per_job="gres:gpu:1", partition="cpu"))["reason"] == \
        "partition cpu is not managed by placer"
    assert d.decide(req("y", tres_per_job="gres:gpu:1", partition="gpu"))["action"] == "advise"
    s, _ = daemon(mode="steer")
    assert s.decide(req("z", tres_per_job="gres:gpu:4"))["action"] == "steer"


@pytest.mark.parametrize("bad", [[1, 2], {"v": 2}, "text", None])
def test_bad_requests_get_none(bad) -> None:
    d, _ = daemon()
    assert d.decide(bad)["action"] == "none"
    assert metric(d, "placer_bad_requests_total") == 1


def test_fail_opens_reported_by_the_hook_are_counted() -> None:
    d, _ = daemon()
    d.decide(req("a", tres_per_job="gres:gpu:1", fail_open=3))
    assert metric(d, "placer_fail_open_total") == 3


def test_over_the_socket(tmp_path: Path) -> None:
    cfg = ServeConfig(socket_path=tmp_path / "p.sock", socket_group="root", refresh_s=3600)
    d = Daemon(FABRIC, FakeSlurm(), cfg)
    ready = threading.Event()
    t = threading.Thread(target=serve, args=(d, ready), daemon=True)
    t.start()
    assert ready.wait(10)
    assert oct(cfg.socket_path.stat().st_mode & 0o777) == "0o660"

    def ask(raw: bytes) -> dict:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(cfg.socket_path))
        s.sendall(raw)
        data = s.makefile().readline()
        s.close()
        return json.loads(data)

    assert ask(b'{"v": 1, "name": "a", "tres_per_job": "gres:gpu:2"}\n')["action"] == "advise"
    assert ask(b"garbage\n") == {"action": "none", "reason": "bad request: not valid JSON: Expecting value"}
    assert ask(b'{"v": 1, "op": "decisions"}\n')["decisions"][0]["name"] == "a"
    # the hook keeps one connection: answers come line after line; an over-long line ends it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as kept:
        kept.settimeout(5)
        kept.connect(str(cfg.socket_path))
        lines = kept.makefile("rwb")
        for name in ("k1", "k2"):
            lines.write(json.dumps({"v": 1, "name": name, "tres_per_job": "gres:gpu:1"}).encode() + b"\n")
            lines.flush()
            assert json.loads(lines.readline())["action"] == "advise"
        lines.write(b'{"v": 1, "name": "' + b"x" * 70000 + b'"}\n')
        lines.flush()
        assert "over 65536 bytes" in json.loads(lines.readline())["reason"]
        lines.write(b'{"v": 1, "name": "k3", "tres_per_job": "gres:gpu:1"}\n')  # and the next line is a request
        lines.flush()
        assert json.loads(lines.readline())["action"] == "advise"
    from plugins.apply import report_pass

    assert report_pass(cfg.socket_path) and d.last_apply is not None  # how `placer apply` says it ran
    assert not report_pass(tmp_path / "absent.sock")  # no daemon: not apply's error
    d.stop.set()
    t.join(10)
    assert not cfg.socket_path.exists()


def test_serve_config_file(tmp_path: Path) -> None:
    f = tmp_path / "serve.yaml"
    f.write_text("mode: steer\npartitions: [gpu, big]\nrefresh_s: 2\nsocket: /tmp/x.sock\n")
    cfg = load_serve_config(str(f))
    assert cfg.mode == "steer" and cfg.partitions == ("gpu", "big") and cfg.refresh_s == 2
    # every bad key at once, each named
    f.write_text("mode: sideways\nsockt: /x\nrefresh_s: 0\nmetrics_port: 70000\npartitions: gpu\n"
                 "gpu_only: 'no'\nsocket: relative.sock\nmax_wait4switch_s: 1.5\n")
    with pytest.raises(RequestError) as err:
        load_serve_config(str(f))
    text = err.value.render()
    for part in ("mode: expected advise or steer, got 'sideways'", "sockt: unknown setting",
                 "refresh_s: expected a number from 0.1 to 3600, got 0", "metrics_port: expected a whole number "
                 "from 1 to 65535, got 70000", "partitions: expected a list of partition names",
                 "gpu_only: expected true or false", "socket: expected an absolute path",
                 "max_wait4switch_s: expected a whole number"):
        assert part in text, text
    assert len(err.value.problems) == 8


def test_serve_refuses_a_busy_metrics_port_and_a_missing_socket_tree(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        d, _ = daemon(metrics_port=port, socket_path=tmp_path / "s" / "placer.sock")
        with pytest.raises(RequestError, match=f"--metrics-port {port}: 127.0.0.1:{port} cannot be used"):
            serve(d)
    finally:
        busy.close()
    d, _ = daemon(socket_path=tmp_path / "no" / "such" / "placer.sock")
    with pytest.raises(RequestError, match="does not exist .placer creates only the socket's own directory"):
        serve(d)
    assert not (tmp_path / "no").exists()


class RecordingSlurm(FakeSlurm):
    """Records what `placer apply` asks of Slurm."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
        self.calls.append(("pin", job_id))

    def release(self, job_id: int) -> None:
        self.calls.append(("release", job_id))


def test_a_wrong_inventory_gets_no_advice_until_it_matches() -> None:
    d, slurm = daemon()
    slurm.nodes[3] = SlurmNode("gpu004", "up", gpus=4, partitions=("gpu",))  # Slurm says 4 GPUs where the inventory says 8
    d.refresh()
    a = d.decide(req("a", tres_per_job="gres:gpu:1"))
    assert a["action"] == "none" and "inventory does not match Slurm (GPU count: 1 node(s), gpu004)" in a["reason"]
    assert metric(d, "placer_inventory_mismatch_nodes") == 1
    slurm.nodes = slurm.nodes[:-2]  # and two inventory nodes Slurm does not know
    d.refresh()
    assert metric(d, "placer_inventory_mismatch_nodes") == 3
    assert "not in Slurm: 2 node(s), gpu015, gpu016" in d.decide(req("b", tres_per_job="gres:gpu:1"))["reason"]
    slurm.nodes = [SlurmNode(n, "up", partitions=("gpu",)) for n in FABRIC.node_names]
    d.refresh()
    assert d.decide(req("c", tres_per_job="gres:gpu:1"))["action"] == "advise"
    assert metric(d, "placer_inventory_mismatch_nodes") == 0


def test_apply_releases_held_jobs_and_pins_nothing_on_a_wrong_inventory() -> None:
    from placer import PlannerConfig
    from plugins.apply import apply_once

    slurm = RecordingSlurm()
    slurm.nodes[0] = SlurmNode("gpu001", "up", gpu_model="l40s", partitions=("gpu",))  # the inventory says another model
    slurm.jobs = [SlurmJob(job_id=7, name="held", state="PENDING", priority=0, reason="JobHeldUser",
                           admin_comment="placer:steer", node_count=1, gpus_per_job=2, submit_time=1000)]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=1010)
    assert slurm.calls == [("release", 7)] and not out.pinned
    assert out.errors and "GPU model: 1 node(s), gpu001" in out.errors[0]
    slurm.nodes[0] = SlurmNode("gpu001", "up", partitions=("gpu",))
    slurm.calls.clear()
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=1010)
    assert slurm.calls == [("pin", 7), ("release", 7)] and not out.errors


@pytest.mark.parametrize("args", [["serve", "--refresh-s", "0"], ["serve", "--refresh-s", "nan"],
                                  ["serve", "--metrics-port", "0"], ["serve", "--metrics-port", "65536"],
                                  ["apply", "--interval-s", "nan"], ["apply", "--max-hold-s", "inf"]])
def test_daemon_flags_out_of_range_are_usage_errors(args: list[str]) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    res = CliRunner().invoke(cli, [*args, "--inventory", "preset:tiny"])
    assert res.exit_code == 2 and "Invalid value" in res.output


def test_apply_keeps_off_nodes_that_pending_advised_jobs_will_take() -> None:
    """A hook-advised job (ReqNodeList set at submit, no steer tag) that Slurm has not started yet: its
    nodes are spoken for, so apply never pins a held job onto them."""
    from placer import PlannerConfig
    from plugins.apply import apply_once

    slurm = RecordingSlurm()
    pins: dict[int, str] = {}
    slurm.pin = lambda job_id, nodes, num_nodes: pins.__setitem__(job_id, nodes)  # type: ignore[method-assign]
    advised = [SlurmJob(job_id=10 + i, name=f"advised{i}", state="PENDING", priority=1, reason="None",
                        node_count=1, gpus_per_job=8, required_nodes=(n,)) for i, n in enumerate(FABRIC.node_names[:15])]
    held = SlurmJob(job_id=7, name="held", state="PENDING", priority=0, reason="JobHeldUser", admin_comment="placer:steer",
                    node_count=1, gpus_per_job=8, submit_time=1000)
    slurm.jobs = [*advised, held]
    apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=1010)
    assert pins == {7: FABRIC.node_names[15]}  # the one node no advised job will take


def test_advice_is_held_while_pending_and_freed_once_cancelled() -> None:
    """After the next refresh, Slurm's view decides: an advised job still pending keeps its nodes (its
    ReqNodeList), one cancelled before it started gives them back at once (not after the 30 s TTL)."""
    d, slurm = daemon()
    a = d.decide(req("a", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
    b = d.decide(req("b", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
    nodes_a, nodes_b = expand(a["req_nodes"]), expand(b["req_nodes"])
    slurm.jobs = [SlurmJob(job_id=1, name="a", state="PENDING", priority=1, node_count=2, gpus_per_node=8,
                           required_nodes=tuple(nodes_a))]  # b was cancelled before it started
    d.refresh()
    assert d.reservations == []
    free = {n: int(d.state.free_gpus[FABRIC.node_index[n]]) for n in nodes_a + nodes_b}
    assert free == {**{n: 0 for n in nodes_a}, **{n: 8 for n in nodes_b}}
    again = d.decide(req("c", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
    assert not set(expand(again["req_nodes"])) & set(nodes_a)


@pytest.mark.parametrize("kw,steered", [
    ({"reason": "JobHeldUser", "admin_comment": "placer:steer"}, True),
    ({"reason": "JobHeldUser", "comment": "placer:steer"}, False),  # a user's own Comment: anyone can write it
    ({"reason": "JobHeldAdmin", "admin_comment": "placer:steer"}, False),  # an admin held it since
    ({"reason": "None", "priority": 5, "admin_comment": "placer:steer"}, False),  # released already
])
def test_only_the_hooks_own_holds_are_released(kw: dict, steered: bool) -> None:
    from plugins.apply import release_all

    job = SlurmJob(**{"job_id": 3, "name": "j", "state": "PENDING", "priority": 0, **kw})
    assert job.steered is steered
    slurm = RecordingSlurm()
    slurm.jobs = [job]
    assert release_all(slurm) == ([3] if steered else []) and len(slurm.calls) == int(steered)


def test_steer_mode_is_safe_without_apply() -> None:
    """The daemon counts the hook's holds and releases those past max_hold_s itself, counting from when
    Slurm could start the job: not one waiting for its dependency (4), nor one eligible 30 s ago (5)."""
    slurm = RecordingSlurm()
    now = time.time()
    slurm.jobs = [SlurmJob(job_id=i, name=f"h{i}", state="PENDING", priority=0, reason="JobHeldUser",
                           admin_comment="placer:steer", gpus_per_job=1, submit_time=int(now - age))
                  for i, age in ((1, 700), (2, 30))]
    slurm.jobs.append(SlurmJob(job_id=3, name="admin", state="PENDING", priority=0, reason="JobHeldAdmin",
                               admin_comment="placer:steer", gpus_per_job=1, submit_time=int(now - 9000)))
    slurm.jobs += [replace(slurm.jobs[0], job_id=4, submit_time=int(now - 9000), dependency="afterok:3(unfulfilled)"),
                   replace(slurm.jobs[0], job_id=5, submit_time=int(now - 9000), eligible_time=int(now - 30))]
    d = Daemon(FABRIC, slurm, ServeConfig(mode="steer", max_hold_s=600))
    d.refresh()
    assert slurm.calls == [("release", 1)]  # not the young one, never the admin's
    assert metric(d, "placer_held_jobs") == 3 and metric(d, "placer_oldest_hold_seconds") >= 699
    assert metric(d, "placer_hold_timeouts_total") == 1
    slurm.jobs = slurm.jobs[1:4]  # 1 released, 5 gone; 4's dependency met: its hold counts from now
    slurm.jobs[-1] = replace(slurm.jobs[-1], dependency="")
    d.refresh()
    assert slurm.calls == [("release", 1)] and metric(d, "placer_held_jobs") == 2
    assert metric(d, "placer_oldest_hold_seconds") < 60


def _in_two_partitions(slurm: FakeSlurm) -> None:
    """gpu[001-008] in `gpu` only, gpu[009-016] in `gpu` and `half`."""
    slurm.nodes = [SlurmNode(n, "up", partitions=("gpu",) if i < 8 else ("gpu", "half"))
                   for i, n in enumerate(FABRIC.node_names)]


def test_advice_keeps_to_the_jobs_partition() -> None:
    d, slurm = daemon()
    _in_two_partitions(slurm)
    d.refresh()
    for k in range(3):
        a = d.decide(req(f"h{k}", partition="half", tres_per_node="gres:gpu:8", min_nodes=2, shared=0))
        assert a["action"] == "advise" and all(int(n[3:]) > 8 for n in expand(a["req_nodes"])), a
    assert "several partitions (gpu,half)" in d.decide(req("x", partition="gpu,half", tres_per_job="gres:gpu:1"))["reason"]
    assert "partition nope is not one Slurm lists" in d.decide(req("y", partition="nope", tres_per_job="gres:gpu:1"))["reason"]
    # two partitions and no name: which one is Slurm's default is not guessed
    assert "partition is not known" in d.decide(req("z", tres_per_job="gres:gpu:1"))["reason"]


def test_gpus_per_task_on_one_node_with_its_model() -> None:
    d, _ = daemon()
    a = d.decide(req("t", tres_per_task="gres:gpu:h100:2", num_tasks=3))
    assert a["action"] == "advise" and len(expand(a["req_nodes"])) == 1 and a["min_nodes"] == 1
    node = FABRIC.node_index[expand(a["req_nodes"])[0]]
    assert int(d.state.free_gpus[node]) == 2  # six of its eight GPUs reserved for the three tasks
    assert d.decide(req("m", tres_per_task="gres:gpu:l40s:1", num_tasks=2))["action"] == "none"  # no l40s here
    several = d.decide(req("s", tres_per_task="gres:gpu:1", num_tasks=16, min_nodes=2))
    assert several["action"] == "none" and "--gpus-per-task over several nodes" in several["reason"]
    assert "--gpus-per-socket" in d.decide(req("k", tres_per_socket="gres:gpu:2"))["reason"]


def test_a_node_drained_between_refreshes_is_never_advised() -> None:
    """The drain watch takes a node off within one poll; a full refresh asked before the drain (an older
    picture of Slurm) must not bring it back."""
    d, slurm = daemon()
    slurm.nodes = [SlurmNode(n, "drain" if n == "gpu001" else "up", partitions=("gpu",)) for n in FABRIC.node_names]
    d.poll_nodes()
    picks = [d.decide(req(f"s{k}", tres_per_job="gres:gpu:8")) for k in range(16)]
    assert all("gpu001" not in p.get("req_nodes", "") for p in picks) and "req_nodes" not in picks[-1]
    assert "gpu001" in d.state_summary()["unusable_nodes"]

    d, slurm = daemon()
    stale = slurm.snapshot()  # all up: what squeue/sinfo said just before the drain
    slurm.nodes = [SlurmNode(n, "down" if n == "gpu002" else "up", partitions=("gpu",)) for n in FABRIC.node_names]
    # the refresh is slow; the drain watch polls while it runs
    def slow_snapshot() -> SlurmSnapshot:
        d.poll_nodes()
        return stale

    slurm.snapshot = slow_snapshot  # type: ignore[method-assign]
    d.refresh()
    assert "gpu002" in d.state_summary()["unusable_nodes"]


def test_node_poll_errors_are_counted_and_the_watch_goes_on() -> None:
    d, slurm = daemon(node_poll_s=0.01)
    calls = []

    def broken() -> list[SlurmNode]:
        calls.append(1)
        raise IndexError("a malformed sinfo line")

    slurm.node_states = broken  # type: ignore[method-assign]
    t = threading.Thread(target=d.node_poller, daemon=True)
    t.start()
    time.sleep(0.2)
    d.stop.set()
    t.join(2)
    assert len(calls) > 3 and metric(d, "placer_node_poll_errors_total") == len(calls)


def test_the_daemon_knows_when_apply_last_ran() -> None:
    d, _ = daemon(mode="steer")
    assert metric(d, "placer_last_apply_age_seconds") == -1 and d.state_summary()["last_apply"] is None
    assert d.decide({"v": 1, "op": "apply-pass"})["action"] == "none"
    assert 0 <= metric(d, "placer_last_apply_age_seconds") < 5


def test_apply_pins_within_the_partition_and_leaves_what_it_cannot_honour() -> None:
    from placer import PlannerConfig
    from plugins.apply import apply_once

    slurm = RecordingSlurm()
    _in_two_partitions(slurm)
    pins: dict[int, str] = {}
    slurm.pin = lambda job_id, nodes, num_nodes: pins.__setitem__(job_id, nodes)  # type: ignore[method-assign]
    held = SlurmJob(job_id=0, name="", state="PENDING", priority=0, reason="JobHeldUser",
                    admin_comment="placer:steer", submit_time=1000)
    slurm.jobs = [replace(held, job_id=1, name="half", partition="half", node_count=2, gpus_per_node=8),
                  replace(held, job_id=2, name="tasks", partition="gpu", node_count=2, gpus_per_task=1, tasks=4),
                  replace(held, job_id=3, name="model", partition="gpu", node_count=1, gpus_per_task=2, tasks=2,
                          gpu_model="h100"),
                  replace(held, job_id=4, name="excl", partition="half", node_count=1, gpus_per_job=8,
                          excluded_nodes=tuple(FABRIC.node_names[8:15]))]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=1010)
    assert all(int(n[3:]) > 8 for n in expand(pins[1])) and len(expand(pins[3])) == 1 and 2 not in pins
    assert pins[4] == FABRIC.node_names[15]  # the one node of its partition it did not exclude
    assert (2, "--gpus-per-task over several nodes is left to Slurm") in out.released_unpinned


def test_stale_requests_are_not_decided_and_undelivered_answers_free_their_nodes() -> None:
    """After a stall (SIGSTOP, a long GC) the daemon finds requests the hook gave up on long ago: deciding
    them would reserve nodes for jobs that went in unchanged, and later submits would find no room."""
    d, _ = daemon()
    free = int(d.state.free_gpus.sum())
    old = d.decide(req("old", tres_per_job="gres:gpu:8", sent=time.time() - 5))
    assert old["action"] == "none" and "stale request" in old["reason"] and int(d.state.free_gpus.sum()) == free
    fresh, held = d.decide_held(req("fresh", tres_per_job="gres:gpu:8", sent=time.time()))
    assert fresh["action"] == "advise" and held and int(d.state.free_gpus.sum()) == free - 8
    d.undo(held)  # the answer could not be written: the hook had closed its end
    assert int(d.state.free_gpus.sum()) == free and d.reservations == []


def _tiny(_: str):
    return FABRIC


class _HeldOne(FakeSlurm):
    def __init__(self) -> None:
        super().__init__()
        self.nodes[0] = SlurmNode("gpu001", "drain", partitions=("gpu",))
        self.jobs = [SlurmJob(job_id=9, name="h", state="PENDING", priority=0, reason="JobHeldUser",
                              admin_comment="placer:steer", gpus_per_job=1, submit_time=int(time.time())),
                     SlurmJob(job_id=3, name="r", state="RUNNING", node_count=1, nodes=("gpu002",),
                              gpu_ids={"gpu002": (0, 1)})]


class _Broken(FakeSlurm):
    def snapshot(self) -> SlurmSnapshot:
        raise BackendError("squeue failed (a stand-in)")


def test_the_refresh_worker_process_gives_the_same_picture() -> None:
    """`placer serve` reads Slurm in a worker process (its JSON parsing would hold up decisions); what comes
    back is exactly what the in-process path gives, and errors come back as errors."""
    from plugins.refresh_worker import ProcessRefresher, picture

    worker = ProcessRefresher(_tiny, "tiny", _HeldOne)
    try:
        got, want = worker(), picture(FABRIC, _HeldOne().snapshot())
        assert (got.free_mask == want.free_mask).all() and (got.usable == want.usable).all()
        assert got.steered == want.steered and got.steered[0][0] == 9 and not got.usable[0] and int(got.free_gpus[1]) == 6
        assert got.partitions == want.partitions and list(got.partitions or {}) == ["gpu"]
        d = Daemon(FABRIC, FakeSlurm(), ServeConfig())
        d.take_picture = worker
        d.refresh()
        assert "gpu001" in d.state_summary()["unusable_nodes"] and d.state_summary()["gpus_in_use"] == 2
    finally:
        worker.close()
    broken = ProcessRefresher(_tiny, "tiny", _Broken)
    try:
        with pytest.raises(BackendError, match="squeue failed"):
            broken()
    finally:
        broken.close()


class _Hangs(FakeSlurm):
    def snapshot(self) -> SlurmSnapshot:
        import os

        Path(os.environ["PLACER_TEST_HANG_PID"]).write_text(str(os.getpid()))  # the read has reached the worker
        time.sleep(60)  # a squeue that a restarting slurmctld keeps waiting
        return super().snapshot()


def test_closing_the_refresh_worker_ends_a_read_in_flight(tmp_path: Path, monkeypatch) -> None:
    """`placer serve` stops at once on SIGTERM: closing its refresh worker ends a read in flight instead of
    waiting for it (before, the daemon's exit waited for the read), and nothing new is started after."""
    import os
    import threading

    from plugins.refresh_worker import ProcessRefresher

    pid_file = tmp_path / "worker.pid"
    monkeypatch.setenv("PLACER_TEST_HANG_PID", str(pid_file))  # the worker is spawned with this environment
    worker = ProcessRefresher(_tiny, "tiny", _Hangs)
    said: list[BaseException] = []

    def read() -> None:
        try:
            worker()
        except BackendError as exc:
            said.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().isdigit()) and time.monotonic() < deadline and not said:
        time.sleep(0.05)
    assert pid_file.exists() and pid_file.read_text().isdigit(), f"the read never reached a worker: {said}"
    pid = int(pid_file.read_text())
    started = time.monotonic()
    worker.close()
    reader.join(10)
    while Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid) and time.monotonic() < started + 10:
        time.sleep(0.05)
    gone = not Path(f"/proc/{pid}").exists() or "zombie" in _proc_state(pid)
    if not gone:
        os.kill(pid, 9)
    assert gone, f"the refresh worker {pid} outlived close() by 10 s"
    assert said and "stopped" in str(said[0]), said
    with pytest.raises(BackendError, match="stopped"):
        worker()


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "gone"


def test_the_refresh_worker_ends_when_its_daemon_is_killed(tmp_path) -> None:
    """A SIGKILLed daemon leaves no refresh worker behind (nor multiprocessing's resource tracker)."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "daemon.py"
    script.write_text("import os, time\nfrom plugins.refresh_worker import ProcessRefresher\n"
                      "from tests.test_serve_unit import _tiny, _HeldOne\nif __name__ == '__main__':\n"
                      "    w = ProcessRefresher(_tiny, 'tiny', _HeldOne)\n    w()\n"
                      "    print(os.getpid(), flush=True)\n    time.sleep(600)\n")
    root = Path(__file__).resolve().parent.parent
    daemon = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert daemon.stdout is not None and int(daemon.stdout.readline()) == daemon.pid
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(daemon.pid)], capture_output=True,
                              text=True).stdout.split()
        assert kids, "the daemon started no worker process"
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        if daemon.stdout is not None:
            daemon.stdout.close()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{k}").exists() for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [k for k in kids if Path(f"/proc/{k}").exists()]
    for k in alive:
        os.kill(int(k), signal.SIGKILL)
    assert not alive, f"worker process(es) {alive} outlived the killed daemon"


def test_why_through_the_daemon_and_in_applys_log() -> None:
    """`{"v": 1, "op": "why", "job": ID}` on the daemon's socket gives `placer why`'s answer from its last
    refresh; `placer apply` logs the same sentence for a job it leaves waiting (issue 20)."""
    import time

    from placer import PlannerConfig
    from placer.timeline import DEFAULT_HOLD_S, HoldRule
    from plugins.apply import apply_once

    d, slurm = daemon(max_hold_s=86400.0)  # the daemon's own hold timeout must not release the job first
    now = int(time.time())
    # every node busy: 15 with a job ending in 10 minutes, one with no known end
    slurm.jobs = [SlurmJob(job_id=100 + i, name=f"r{i}", state="RUNNING", node_count=1, gpus_per_job=8,
                           nodes=(n,), gpu_ids={n: tuple(range(8))}, end_time=now + 600 if i else 0)
                  for i, n in enumerate(FABRIC.node_names)]
    slurm.jobs.append(SlurmJob(job_id=7, name="big", state="PENDING", priority=0, reason="JobHeldUser",
                               admin_comment="placer:steer", node_count=2, gpus_per_job=16,
                               submit_time=now - int(DEFAULT_HOLD_S) - 60, partition="gpu"))  # past its hold: not pinned ahead
    d.refresh()
    a = d.decide({"v": 1, "op": "why", "job": 7})["why"]
    assert a["verdict"] == "waits" and a["within_bound"]["in_s"] in (599, 600, 601)
    assert len(a["within_bound"]["blocked_by"]) == 2 and a["waits_for"] is None
    slurm.jobs.append(replace(slurm.jobs[-1], job_id=9, dependency="afterok:7(unfulfilled)"))
    d.refresh()
    b = d.decide({"v": 1, "op": "why", "job": 9})["why"]  # Slurm's wait said first, then placer's
    assert b["waits_for"] == "its dependency afterok:7(unfulfilled)" and b["sentence"].startswith(
        "Slurm would not start it yet: it waits for its dependency afterok:7(unfulfilled). Once it could: "), b
    slurm.jobs.pop()
    d.refresh()
    assert "no pending job 8" in d.decide({"v": 1, "op": "why", "job": 8})["reason"]
    assert "no pending job 'x'" in d.decide({"v": 1, "op": "why", "job": "x"})["reason"]
    slurm.pin = lambda *a: None  # type: ignore[method-assign]  # (never called: asserted by the report)
    slurm.release = lambda *a: None  # type: ignore[method-assign]
    # its hold counted from submission (with the default hold_from_room, room comes in 600 s and it is reserved)
    report = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=86400, now=now, hold=HoldRule(from_room=False))
    assert not report.pinned and not report.reserved
    assert [(j, s.split(":")[0]) for j, s in report.waiting] == [(7, "job 7 (16 GPUs) waits")]
    assert "once 1" in report.waiting[0][1] and "(ends in 600 s)" in report.waiting[0][1]


def test_advice_keeps_off_slurms_reservations_and_leaves_jobs_in_one_to_slurm() -> None:
    """A reservation on leaf 1 now (for other users): a 4-node job, which would take leaf 1, is advised
    leaf 2; one on leaf 2 from an hour on: a job of 30 minutes may still take it, one of 2 hours or with no
    time limit (it could run into it) takes leaf 3. A job in a reservation (`--reservation`) is Slurm's."""
    d, slurm = daemon()
    four = {"min_nodes": 4, "tres_per_node": "gres:gpu:8", "shared": 0}
    assert d.decide(req("before", **four))["req_nodes"] == "gpu[001-004]"
    d, slurm = daemon()
    now = time.time()
    slurm.reservations = [SlurmReservation("maint", tuple(f"gpu00{i}" for i in range(1, 5)), now - 60, now + 3600),
                          SlurmReservation("later", tuple(f"gpu00{i}" for i in range(5, 9)), now + 3600, now + 7200)]
    d.refresh()
    assert d.decide(req("short", time_limit=30, **four))["req_nodes"] == "gpu[005-008]"
    d, slurm = daemon()
    slurm.reservations = [SlurmReservation("maint", tuple(f"gpu00{i}" for i in range(1, 5)), now - 60, now + 3600),
                          SlurmReservation("later", tuple(f"gpu00{i}" for i in range(5, 9)), now + 3600, now + 7200)]
    d.refresh()
    assert d.decide(req("long", time_limit=120, **four))["req_nodes"] == "gpu[009-012]"
    assert d.decide(req("unlimited", **four))["req_nodes"] == "gpu[013-016]"
    a = d.decide(req("inside", reservation="maint", **four))
    assert a["action"] == "none" and a["reason"] == "a job in reservation maint is left to Slurm", a


def test_a_node_slurm_shows_allocated_with_no_job_seen_is_never_advised() -> None:
    """gpu001-012 run jobs placer sees; gpu013 is ALLOCATED in sinfo with no job seen (one that ended
    between sinfo and squeue, or hidden from placer's user): taken whole, so a 1-GPU job, which best fit
    would put there, goes elsewhere. One such node among 13 busy is not said; if every busy node were
    so, it would be (`PrivateData=jobs`, tests/test_slurm_versions.py)."""
    d, slurm = daemon()
    slurm.jobs = [SlurmJob(job_id=i, name=f"r{i}", state="RUNNING", node_count=1, nodes=(f"gpu{i:03d}",),
                           gpu_ids={f"gpu{i:03d}": tuple(range(8))}, gpus_per_node=8) for i in range(1, 13)]
    slurm.nodes = [replace(n, busy=n.name <= "gpu013") for n in slurm.nodes]
    d.refresh()
    a = d.decide(req("one", tres_per_job="gres:gpu:1"))
    assert a["action"] == "advise" and a["req_nodes"] in {"gpu014", "gpu015", "gpu016"}, a
    report = to_cluster_state(FABRIC, slurm.snapshot())
    assert not report.warnings and int(report.state.free_gpus[FABRIC.node_index["gpu013"]]) == 0


def test_a_node_whose_cpus_slurm_shows_all_taken_is_never_advised() -> None:
    """gpu001 runs a CPU-only job holding every core: its 8 GPUs are free, but Slurm shows it ALLOCATED and
    would start nothing there. A 1-GPU job is advised gpu002, not gpu001 (before 2026-12-07 it was advised
    gpu001 and waited). Seen as MIXED (some cores left), gpu001 stays usable."""
    for full, expect in ((True, "gpu002"), (False, "gpu001")):
        d, slurm = daemon()
        slurm.jobs = [SlurmJob(job_id=1, name="cpu", state="RUNNING", node_count=1, nodes=("gpu001",))]
        slurm.nodes = [replace(n, busy=n.name == "gpu001", full=full and n.name == "gpu001") for n in slurm.nodes]
        d.refresh()
        a = d.decide(req("one", tres_per_job="gres:gpu:1"))
        assert a["action"] == "advise" and a["req_nodes"] == expect, (full, a)
        assert not to_cluster_state(FABRIC, slurm.snapshot()).warnings


def test_an_interactive_job_is_advised_never_held() -> None:
    """Steer mode holds a batch job for `placer apply`; an interactive one (salloc/srun: no batch script)
    is advised nodes free now instead, as in advise mode: held, its user would wait at a terminal for
    apply's pass, and `--immediate=N` would fail when the pass came later than N seconds."""
    d, _ = daemon(mode="steer")
    assert d.decide(req("later", tres_per_job="gres:gpu:1"))["action"] == "steer"
    a = d.decide(req("now", tres_per_job="gres:gpu:1", interactive=True))
    assert a["action"] == "advise" and "req_nodes" in a, a
    assert d.decide(req("batch", tres_per_job="gres:gpu:1", interactive=False))["action"] == "steer"
