"""Pure parsers over Slurm 22.05 output captured from the lab (tests/data/slurm2205/), and the one path
from a snapshot to a ClusterState."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.backend import (
    SlurmJob,
    SlurmNode,
    SlurmSnapshot,
    node_state_of,
    parse_gpu_idx,
    parse_tres_gpus,
    to_cluster_state,
)
from plugins.pyslurm_backend import same_release
from plugins.slurm_cli import (
    SlurmCliBackend,
    parse_node_states_text,
    parse_sinfo_json,
    parse_squeue_json,
    text_node_state,
)
from topology import BackendError, ClusterState
from topology.generate import design_for, generate

DATA = Path(__file__).parent / "data" / "slurm2205"
ALL_UP = tuple(SlurmNode(n, "up") for n in generate(design_for("tiny")).node_names)


def test_squeue_json_2205() -> None:
    jobs = {j.job_id: j for j in parse_squeue_json((DATA / "squeue.json").read_text())}
    multi, small, small2, held = jobs[1], jobs[2], jobs[3], jobs[4]
    assert multi.running and multi.nodes == ("gpu013", "gpu014") and multi.gpus == 16
    assert multi.gpu_ids == {"gpu013": tuple(range(8)), "gpu014": tuple(range(8))}
    assert small.gpu_ids == {"gpu015": (0, 1, 2)} and small.gpus_per_node == 3
    assert small2.gpu_ids == {"gpu015": (3, 4)} and small2.gpus_per_job == 2
    assert held.held and not held.running and held.nodes == () and held.reason == "JobHeldUser"


def test_sinfo_json_2205() -> None:
    nodes = {n.name: n for n in parse_sinfo_json((DATA / "sinfo.json").read_text())}
    assert nodes["gpu012"] == SlurmNode("gpu012", "down", "dead psu", ("h100",), 8, "h100", ("gpu",), cpus=16)
    assert nodes["gpu016"] == SlurmNode("gpu016", "drain", "test drain", ("h100",), 8, "h100", ("gpu",), cpus=16)
    assert nodes["gpu015"].state == "up" and len(nodes) == 16


def test_snapshot_to_cluster_state() -> None:
    fabric = generate(design_for("tiny"))
    snap = SlurmSnapshot(tuple(parse_sinfo_json((DATA / "sinfo.json").read_text())),
                         tuple(parse_squeue_json((DATA / "squeue.json").read_text())))
    r = to_cluster_state(fabric, snap)
    idx = fabric.node_index
    assert r.warnings == []
    assert r.state.free_gpu_ids(idx["gpu015"]) == [5, 6, 7]
    assert r.state.free_gpus[idx["gpu013"]] == 0
    assert not r.state.usable[idx["gpu012"]] and not r.state.usable[idx["gpu016"]]
    assert [j.job_id for j in r.running] == [1, 2, 3]


def test_conflicts_and_unknown_nodes_are_warned() -> None:
    fabric = generate(design_for("tiny"))
    jobs = (SlurmJob(1, "a", "RUNNING", nodes=("gpu001",), gpu_ids={"gpu001": (0, 1)}),
            SlurmJob(2, "b", "RUNNING", nodes=("gpu001", "login1"), gpu_ids={"gpu001": (1, 2)}),
            SlurmJob(3, "c", "RUNNING", nodes=("gpu002",), gpu_ids={"gpu002": (7, 9, 7)}))
    r = to_cluster_state(fabric, SlurmSnapshot(ALL_UP, jobs))
    assert any("GPUs [1] of gpu001 are already taken" in w for w in r.warnings)
    assert any("login1, which is not in fabric" in w for w in r.warnings)
    assert any("GPUs [9] of gpu002 are already taken or do not exist" in w for w in r.warnings)
    assert len(r.warnings) == 3
    assert r.state.free_gpu_ids(0) == [3, 4, 5, 6, 7]
    assert r.state.free_gpu_ids(1) == list(range(7)) and r.state.free_gpus[1] == 7  # GPU 7 once, 9 left out


@pytest.mark.parametrize("text,ids", [("gpu:h100:2(IDX:3-4)", (3, 4)), ("gpu:8(IDX:0-7)", tuple(range(8))),
                                      ("gpu:a:1(IDX:0),gpu:b:2(IDX:2,5)", (0, 2, 5)), ("gpu:h100:0(IDX:N/A)", ()),
                                      ("", ())])
def test_gpu_idx(text: str, ids: tuple) -> None:
    assert parse_gpu_idx(text) == ids


@pytest.mark.parametrize("text,n", [("gres:gpu:8", 8), ("gres:gpu:h100:4", 4), ("gres/gpu:2", 2),
                                    ("gres:nic:1,gres:gpu:3", 3), (None, 0), ("cpu:4", 0)])
def test_tres_gpus(text, n) -> None:
    assert parse_tres_gpus(text) == n


@pytest.mark.parametrize("base,flags,state", [("idle", [], "up"), ("mixed", [], "up"), ("idle", ["DRAIN"], "drain"),
                                              ("allocated", ["DRAIN"], "drain"), ("down", [], "down"),
                                              ("idle", ["NOT_RESPONDING"], "down"), ("future", [], "down")])
def test_node_states(base, flags, state) -> None:
    assert node_state_of(base, flags) == state


def test_backend_runs_the_right_commands_and_reports_errors() -> None:
    calls: list[list[str]] = []

    def runner(cmd: list[str]) -> str:
        calls.append(cmd)
        if cmd[0] == "sinfo":
            return (DATA / "sinfo.json").read_text()
        if cmd[0] == "squeue":
            return (DATA / "squeue.json").read_text()
        return "No reservations in the system\n" if cmd[:3] == ["scontrol", "show", "reservation"] else ""

    be = SlurmCliBackend(runner)
    snap = be.snapshot()
    assert len(snap.nodes) == 16 and len(snap.jobs) == 4
    be.pin(7, "gpu[001-002]", 2)
    be.release(7)
    assert calls[2:] == [["scontrol", "show", "reservation", "--oneliner"],
                         ["scontrol", "update", "JobId=7", "ReqNodeList=gpu[001-002]", "NumNodes=2"],
                         ["scontrol", "release", "7"]]
    with pytest.raises(BackendError, match="did not print JSON"):
        SlurmCliBackend(lambda cmd: "Slurm is down").snapshot()
    with pytest.raises(BackendError, match="reported errors"):
        SlurmCliBackend(lambda cmd: '{"errors": [{"error": "boom"}], "nodes": []}').snapshot()


@pytest.mark.parametrize("py,slurm,ok", [("22.5.1", "slurm 22.05.8", True), ("25.11.0", "slurm 22.05.8", False),
                                         ("25.11.0", "slurm 25.11.2", True), ("x", "slurm 22.05", False)])
def test_pyslurm_release_match(py, slurm, ok) -> None:
    assert same_release(py, slurm) is ok


def test_missing_slurm_conf_is_said_at_once() -> None:
    from plugins.slurm_cli import subprocess_runner

    with pytest.raises(BackendError, match="slurm.conf /nonexistent/slurm.conf does not exist"):
        subprocess_runner("/nonexistent/slurm.conf")


def test_sinfo_2205_lists_each_nodes_partitions() -> None:
    snap = SlurmSnapshot(tuple(parse_sinfo_json((DATA / "sinfo.json").read_text())), ())
    parts = snap.partition_nodes()
    assert parts is not None and list(parts) == ["gpu"] and len(parts["gpu"]) == 16
    assert SlurmSnapshot((SlurmNode("a", "up"),), ()).partition_nodes() is None  # not said: not guessed


# what `sinfo --noheader --Node --format=%N|%T` printed on the 22.05, 24.11 and 26.05 labs, and the marks
# sinfo(1) documents (* not responding, ~ powered off, @ reboot pending, $ maintenance, - planned)
@pytest.mark.parametrize("word,state", [
    ("idle", "up"), ("mixed", "up"), ("allocated", "up"), ("completing", "up"), ("mixed-", "up"),
    ("planned", "up"), ("reserved", "up"), ("drained", "drain"), ("draining", "drain"), ("maint", "drain"),
    ("idle~", "drain"), ("idle@", "drain"), ("mixed$", "drain"), ("reboot_issued", "drain"), ("idle+drain", "drain"),
    ("down", "down"), ("down*", "down"), ("idle*", "down"), ("future", "down"), ("unknown", "down"),
])
def test_text_node_states(word: str, state: str) -> None:
    assert text_node_state(word) == state


def test_node_states_text_keeps_the_worst_and_counts_what_it_cannot_read() -> None:
    nodes, problems = parse_node_states_text("gpu001|idle\ngpu001|drained\ngpu002|mixed\ngpu003|sleepy\n"
                                             "garbage\n\ngpu004|idle\r\n")
    assert {n.name: n.state for n in nodes} == {"gpu001": "drain", "gpu002": "up", "gpu003": "down", "gpu004": "up"}
    assert len(problems) == 2 and "line 4" in problems[0] and "line 5" in problems[1]
    with pytest.raises(BackendError, match="listed no nodes"):
        parse_node_states_text("\n\n")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("gpu01|idle*~drained+-\n \r\t,[]"), max_size=200))
def test_node_states_text_never_crashes(text: str) -> None:
    try:
        nodes, problems = parse_node_states_text(text)
    except BackendError:
        return
    assert nodes and all(n.state in ("up", "drain", "down") for n in nodes)


@settings(max_examples=60, deadline=None)
@given(jobs=st.lists(st.lists(st.tuples(st.sampled_from(["gpu001", "gpu002", "gpu003", "login1"]),
                                        st.lists(st.integers(-1, 9), max_size=6)), max_size=3), max_size=12))
def test_running_jobs_are_taken_as_one_at_a_time_would(jobs: list[list[tuple[str, list[int]]]]) -> None:
    """Slurm's running jobs go into the state in one step (`allocate_masks`); the result is that of taking
    each job's GPUs one at a time in order, with a warning for each node of a job that names a GPU taken
    already (by an earlier job) or one the node does not have, and for a node outside the fabric."""
    fabric = generate(design_for("tiny"))
    snap_jobs = tuple(SlurmJob(k, f"j{k}", "RUNNING", nodes=tuple(n for n, _ in nodes),
                               gpu_ids={n: tuple(ids) for n, ids in nodes}) for k, nodes in enumerate(jobs))
    r = to_cluster_state(fabric, SlurmSnapshot(ALL_UP, snap_jobs))
    want = {n: set(range(8)) for n in ("gpu001", "gpu002", "gpu003")}
    one_by_one = ClusterState(fabric)
    warned = 0
    for j in snap_jobs:
        for node in j.nodes:
            if node not in want:
                warned += 1
                continue
            ids = set(j.gpu_ids[node])
            ok = ids & want[node]
            warned += ok != ids
            want[node] -= ok
            if ok:
                one_by_one.allocate(fabric.node_index[node], sorted(ok))
    assert len(r.warnings) == warned
    for node, free in want.items():
        i = fabric.node_index[node]
        assert r.state.free_gpu_ids(i) == sorted(free) and r.state.free_gpus[i] == len(free)
    for k in ("free_mask", "free_gpus", "group_free_nodes", "group_free_gpus", "group_usable_nodes"):
        assert getattr(r.state, k).tolist() == getattr(one_by_one, k).tolist(), k


def _flaky_client(tmp_path: Path, name: str, stalls: int, json_22_05: bool = False) -> Path:
    """A Slurm client on PATH that stalls (as a busy slurmctld makes it) `stalls` times, then answers;
    each call is counted in calls-NAME. A stall as 24.11 and 26.05 say it (exit 1, "Socket timed out") or
    as 22.05's `--json` does (exit 0, an error with errno -1 and no data; both seen on the lab)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    count = tmp_path / f"calls-{name}"
    stall = ("""echo '{"errors": [{"error": "Unspecified error", "errno": -1}], "nodes": []}'; exit 0""" if json_22_05
             else 'echo "slurm_load_partitions: Socket timed out on send/recv operation" >&2; exit 1')
    script = bindir / name
    script.write_text(f"""#!/bin/sh
n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}
if [ $n -le {stalls} ]; then {stall}; fi
echo answered
""")
    script.chmod(0o755)
    return count


@pytest.mark.parametrize("cmd,stalls,answered,calls", [
    (["sinfo", "--json"], 1, True, 2),                  # a query stalled once is asked again
    (["squeue", "--json"], 2, False, 2),                # ... but only once more
    (["scontrol", "show", "config"], 1, True, 2),
    (["scontrol", "update", "JobId=1", "StartTime=now"], 1, False, 1),  # a change is never repeated
])
@pytest.mark.parametrize("json_22_05", [False, True])
def test_a_stalled_query_is_asked_once_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cmd: list[str],
                                            stalls: int, answered: bool, calls: int, json_22_05: bool) -> None:
    from plugins import slurm_cli

    monkeypatch.setattr(slurm_cli, "STALL_RETRY_PAUSE_S", 0.0)
    count = _flaky_client(tmp_path, cmd[0], stalls, json_22_05)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    out = None
    if answered or json_22_05:  # 22.05's stall exits 0: its JSON parser says it (test_backend_runs_the_right_commands_and_reports_errors)
        out = slurm_cli.run_command(cmd, env).strip()
    else:
        with pytest.raises(BackendError, match="Socket timed out"):
            slurm_cli.run_command(cmd, env)
    if answered:
        assert out == "answered"
    elif json_22_05:
        assert out is not None and '"errno": -1' in out
    assert int(count.read_text()) == calls


@pytest.mark.parametrize("rc,out,err,is_stall", [
    (1, "", "slurm_load_partitions: Socket timed out on send/recv operation", True),  # 24.11, 26.05
    (1, "", "sinfo: error: Unable to contact slurm controller (connect failure)", True),
    (0, '{"errors": [{"error": "Unspecified error", "errno": -1}], "nodes": []}', "", True),  # 22.05
    (0, '{"errors": [], "nodes": [{"name": "n1"}]}', "", False),
    (1, "", "sbatch: error: Batch job submission failed: Invalid partition name specified", False),
    (1, '{"errno": -1}', "Invalid job id", False),  # a nonzero exit is judged by its message alone
])
def test_stalled_knows_both_shapes_of_a_controller_that_did_not_answer(rc: int, out: str, err: str,
                                                                      is_stall: bool) -> None:
    """One test of a stall, shared by the product's queries and the lab harness's retries."""
    import subprocess

    from plugins.slurm_cli import stalled

    assert stalled(subprocess.CompletedProcess(["sinfo"], rc, out, err)) is is_stall


def test_allocated_and_mixed_nodes_are_read() -> None:
    """22.05's words (allocated, mixed) as newer Slurm's lists are (tests/test_slurm_versions.py)."""
    nodes = {n.name: n for n in parse_sinfo_json((DATA / "sinfo.json").read_text())}
    assert [(nodes[n].busy, nodes[n].full) for n in ("gpu013", "gpu014", "gpu015", "gpu001")] == [
        (True, True), (True, True), (True, False), (False, False)]
