"""`sinfo --json` and `squeue --json` of every Slurm shape: 22.05's flat node list (captured from the lab,
tests/data/slurm2205/), the grouped `sinfo` of 24.11 and 26.05 (real captures in ../shared/data/slurm-json,
skipped when absent, and small fixtures of our own), and a snapshot that can never silently be empty.

Fabric of the real captures (128 nodes, as the captured clusters):
        top
     /   |   \\
   l1   l2 .. l8       16 nodes each: n[001-016] ... n[113-128], 8 H100 GPUs, feature h100
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.backend import (
    TAKEN_HIDDEN,
    SlurmJob,
    SlurmNode,
    SlurmReservation,
    SlurmSnapshot,
    held_since,
    ineligible,
    reserved_nodes,
    to_cluster_state,
)
from plugins.slurm_cli import parse_reservations_text, parse_sinfo_json, parse_squeue_json
from topology import BackendError, load_inventory_text
from topology.hostlists import expand

from .conftest import dedent, shared_file

ROOT = Path(__file__).resolve().parent.parent

FABRIC, _ = load_inventory_text(dedent("""
    version: 1
    node_types: {h100x8: {gpus: 8, gpu_model: h100, features: [h100]}}
    defaults: {type: h100x8}
    switches:
      - {name: top}
    """) + "".join(f"  - {{name: l{k}, parent: top, nodes: \"n[{16 * k - 15:03d}-{16 * k:03d}]\"}}\n"
                   for k in range(1, 9)))


@pytest.mark.parametrize("version", ["24.11.5", "26.05.5"])
def test_real_grouped_sinfo_and_squeue(version: str) -> None:
    sinfo = shared_file(f"slurm-json/{version}/sinfo.json").read_text()
    squeue = shared_file(f"slurm-json/{version}/squeue.json").read_text()
    nodes = {n.name: n for n in parse_sinfo_json(sinfo)}
    assert len(nodes) == 128
    assert (nodes["n127"].state, nodes["n127"].reason) == ("down", "down-test")
    assert (nodes["n128"].state, nodes["n128"].reason) == ("drain", "modern-test")
    assert (nodes["n050"].state, nodes["n050"].features, nodes["n050"].gpus, nodes["n050"].gpu_model) == (
        "up", ("h100",), 8, "h100")
    snap_parts = SlurmSnapshot(tuple(parse_sinfo_json(sinfo)), ()).partition_nodes()
    assert snap_parts is not None and list(snap_parts) == ["gpu"] and len(snap_parts["gpu"]) == 128
    jobs = {j.job_id: j for j in parse_squeue_json(squeue)}
    assert jobs[6].held and "placer:steer" in jobs[6].comment and jobs[6].gpus == 4
    assert jobs[4].gpu_model == "h100" and jobs[4].running
    r = to_cluster_state(FABRIC, SlurmSnapshot(tuple(nodes.values()), tuple(jobs.values())))
    idx = FABRIC.node_index
    assert r.warnings == []
    assert not r.state.usable[idx["n127"]] and not r.state.usable[idx["n128"]] and r.state.usable[idx["n050"]]
    in_use = sum(sum(len(v) for v in j.gpu_ids.values()) for j in r.running)
    assert in_use == 8 * 2 + 3 + 2 + 4 and int(FABRIC.total_gpus - r.state.free_gpus.sum()) == in_use
    # the same nodes as a user Slurm shows only their own jobs (PrivateData=jobs) sees them: no job runs
    # anywhere, yet 4 nodes are ALLOCATED or MIXED; each is taken whole, and that is said
    assert sorted(n for n, node in nodes.items() if node.busy) == sorted({n for j in r.running for n in j.nodes})
    full = [n for n, node in nodes.items() if node.full]  # ALLOCATED: here each runs an 8-GPU job
    assert len(full) == 2 and all(int(r.state.free_gpus[idx[n]]) == 0 for n in full)
    hidden = to_cluster_state(FABRIC, SlurmSnapshot(tuple(nodes.values()), ()))
    assert int(FABRIC.total_gpus - hidden.state.free_gpus.sum()) == 8 * 4
    assert len(hidden.warnings) == 1 and hidden.warnings[0].startswith(
        "4 of the 4 node(s) Slurm shows allocated carry no running job placer can see"), hidden.warnings
    assert "PrivateData=jobs" in hidden.warnings[0]


GROUPED = {"sinfo": [
    {"node": {"state": ["IDLE"]}, "nodes": {"nodes": ["n[001-004]"]}, "features": {"total": "h100", "active": "h100"},
     "gres": {"total": "gpu:h100:8"}, "reason": {"description": ""}},
    {"node": {"state": ["IDLE", "DRAIN"]}, "nodes": {"nodes": ["n005"]}, "features": {"active": "h100"},
     "gres": {"total": "gpu:h100:8"}, "reason": {"description": "fan"}},
    {"node": {"state": ["MIXED"]}, "nodes": {"nodes": ["n006"]}, "features": {"active": ""},
     "gres": {"total": "gpu:a100:4"}, "reason": {"description": ""}},
    # n001 also in a second partition, drained there: the worse state wins
    {"node": {"state": ["DOWN"]}, "nodes": {"nodes": ["n001"]}, "features": {"active": "h100"},
     "gres": {"total": "gpu:h100:8"}, "reason": {"description": "dead"}}]}


def test_grouped_sinfo_fixture_and_what_differs_from_the_inventory() -> None:
    nodes = parse_sinfo_json(json.dumps(GROUPED))
    assert [n.name for n in nodes] == ["n001", "n002", "n003", "n004", "n005", "n006", "n001"]
    r = to_cluster_state(FABRIC, SlurmSnapshot(tuple(nodes), ()))
    idx = FABRIC.node_index
    assert [bool(r.state.usable[idx[n]]) for n in ("n001", "n002", "n005", "n006", "n007")] == [
        False, True, False, True, False]
    assert r.warnings[0].startswith("122 node(s) of the inventory are not in Slurm and will not be used: n007")
    assert "1 node(s) whose GPU count in Slurm differ from the inventory: n006" in r.warnings
    assert "1 node(s) whose GPU model in Slurm differ from the inventory: n006" in r.warnings
    assert "1 node(s) whose features in Slurm differ from the inventory: n006" in r.warnings


@pytest.mark.parametrize("doc, why", [({"sinfo": []}, "listed no nodes"), ({"nodes": []}, "listed no nodes"),
                                      ({"partitions": []}, "neither `sinfo` groups nor a `nodes` list")])
def test_a_parse_that_finds_no_node_is_an_error(doc: dict, why: str) -> None:
    with pytest.raises(BackendError, match=why):
        parse_sinfo_json(json.dumps(doc))


def test_a_snapshot_never_silently_empty() -> None:
    with pytest.raises(BackendError, match="no nodes at all"):
        to_cluster_state(FABRIC, SlurmSnapshot((), ()))
    with pytest.raises(BackendError, match="none of the 128 nodes of fabric"):
        to_cluster_state(FABRIC, SlurmSnapshot((SlurmNode("gpu001", "up"),), ()))


@pytest.mark.parametrize("version", ["24.11.5", "26.05.5"])
def test_snapshot_from_saved_outputs(version: str, tmp_path, capsys) -> None:
    """`placer slurm snapshot --from-dir`: the real captures give the down and drained nodes and the
    running jobs (before the grouped-sinfo parser, the down list was empty)."""
    from cli.main import main
    from topology import dump_inventory

    saved = shared_file(f"slurm-json/{version}/sinfo.json").parent
    inv = tmp_path / "inv.yaml"
    inv.write_text(dump_inventory(FABRIC))
    assert main(["slurm", "snapshot", "--inventory", str(inv), "--from-dir", str(saved)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {(d["node"], d["state"], d["reason"]) for d in doc["down_nodes"]} == {
        ("n127", "down", "down-test"), ("n128", "drain", "modern-test")}
    assert doc["summary"]["running_jobs"] == 4 and doc["summary"]["gpus_in_use"] == 25


def test_saved_outputs_are_read_only_and_name_what_is_missing(tmp_path) -> None:
    from plugins.slurm_cli import SlurmCliBackend, saved_outputs_runner

    be = SlurmCliBackend(saved_outputs_runner(str(tmp_path)))
    with pytest.raises(BackendError, match=r"sinfo.json: No such file or directory \(save it with `sinfo --json`\)"):
        be.snapshot()
    with pytest.raises(BackendError, match="read-only"):
        be.release(3)
    (tmp_path / "reservations.txt").write_text("\n")
    with pytest.raises(BackendError, match=r"reservations.txt is empty \(with no reservations Slurm prints"):
        be.reservations()


def test_a_job_name_that_is_not_utf8_does_not_stop_reading_the_queue(tmp_path: Path) -> None:
    """A user's job name is any bytes (`sbatch -J $'caf\\xe9'`), passed through by squeue: one such job made
    every read of the queue a UnicodeDecodeError (the daemon's refresh and every apply pass), for all. It
    reads as U+FFFD, from a saved output or from the command."""
    from plugins import slurm_cli
    from plugins.slurm_cli import SlurmCliBackend, saved_outputs_runner

    data = ROOT / "tests" / "data" / "slurm2205"
    (tmp_path / "sinfo.json").write_bytes((data / "sinfo.json").read_bytes())
    raw = (data / "squeue.json").read_bytes().replace(b'"name": "small"', b'"name": "caf\xe9"')
    (tmp_path / "squeue.json").write_bytes(raw)
    jobs = SlurmCliBackend(saved_outputs_runner(str(tmp_path))).snapshot().jobs
    assert "caf\ufffd" in {j.name for j in jobs}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"#!/bin/sh\ncat {tmp_path / 'squeue.json'}\n")
    (bin_dir / "squeue").chmod(0o755)
    out = slurm_cli.run_command(["squeue", "--json"], {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert '"name": "caf\ufffd"' in out


@pytest.mark.parametrize("job_state,word,keeps_nodes", [
    (["PENDING", "COMPLETING"], "COMPLETING", True),  # a requeue in progress (24.11, seen on the lab)
    (["CANCELLED", "COMPLETING"], "COMPLETING", True),  # cancelled, still on its nodes
    (["RUNNING", "CONFIGURING"], "CONFIGURING", True),
    (["PENDING"], "PENDING", False),
    (["RUNNING"], "RUNNING", True),
    ("COMPLETING", "COMPLETING", True),  # 22.05 printed the word itself
    (["CANCELLED"], "CANCELLED", False),
])
def test_job_state_flags_read_as_squeue_shows_them(job_state, word: str, keeps_nodes: bool) -> None:
    """Newer Slurm prints [base, flags...]; the first flag squeue would show wins, as 22.05's word did.
    Taking the base alone read a requeue in progress as PENDING (replace --apply then raced Slurm's
    requeue delay) and a completing job as off its nodes."""
    doc = {"jobs": [{"job_id": 7, "name": "j", "job_state": job_state, "nodes": "n[001-002]", "node_count": 2}]}
    (job,) = parse_squeue_json(json.dumps(doc))
    assert job.state == word
    assert job.nodes == (("n001", "n002") if keeps_nodes else ())


@pytest.mark.parametrize("eligible,dependency,at,waits", [
    ({"set": True, "infinite": False, "number": 1_000_100}, "", 1_000_100, "its begin time, in 100 s"),  # 23.x+
    (1_000_100, "", 1_000_100, "its begin time, in 100 s"),  # 22.05's plain number
    ({"set": False, "infinite": False, "number": 0}, "afterok:6(unfulfilled)", 0,
     "its dependency afterok:6(unfulfilled)"),
    (0, "afterany:6(unfulfilled),afterok:7(failed)", 0, "its dependency afterany:6(unfulfilled),afterok:7(failed)"),
    (999_990, "", 999_990, ""),
    (1_000_030, "", 1_000_030, ""),  # under a minute away: as now (BEGIN_SOON_S)
])
def test_what_keeps_a_held_job_from_starting_is_read(eligible, dependency: str, at: int, waits: str) -> None:
    """A held job's reason (JobHeldUser) hides its dependency and begin time; both are read from the job."""
    doc = {"jobs": [{"job_id": 7, "name": "j", "job_state": ["PENDING"], "state_reason": "JobHeldUser", "priority": 0,
                     "eligible_time": eligible, "dependency": dependency, "submit_time": 999_900}]}
    (job,) = parse_squeue_json(json.dumps(doc))
    assert job.eligible_time == at and ineligible(job, now=1_000_000) == waits
    assert held_since(job) == max(at, 999_900)


def _n(v: int) -> dict:
    return {"set": True, "infinite": False, "number": v}


@pytest.mark.parametrize("shape", [lambda v: v, _n], ids=["22.05", "24.11+"])
def test_job_arrays_and_heterogeneous_components_are_read(shape) -> None:
    """As squeue --json showed them on the lab (22.05 plain numbers, 24.11 and 26.05 {set, number}): an
    array's pending record (tasks 1-3, task 0 running as its own job), a heterogeneous job's two
    components (leader 5), a plain job (0 in each field), and a job in reservation `maint` (resv_name)."""
    rec = {"name": "j", "state_reason": "Resources", "node_count": shape(1)}
    doc = {"jobs": [
        {**rec, "job_id": 1, "job_state": ["PENDING"], "array_job_id": shape(1), "array_task_string": "1-3"},
        {**rec, "job_id": 2, "job_state": ["RUNNING"], "array_job_id": shape(1), "array_task_id": shape(0),
         "array_task_string": "", "nodes": "gpu001"},
        {**rec, "job_id": 5, "job_state": ["PENDING"], "het_job_id": shape(5), "het_job_offset": shape(0)},
        {**rec, "job_id": 6, "job_state": ["PENDING"], "het_job_id": shape(5), "het_job_offset": shape(1)},
        {**rec, "job_id": 7, "job_state": ["PENDING"], "array_job_id": shape(0), "array_task_string": "",
         "het_job_id": shape(0), "resv_name": ""},
        {**rec, "job_id": 8, "job_state": ["PENDING"], "resv_name": "maint"}]}
    jobs = {j.job_id: j for j in parse_squeue_json(json.dumps(doc))}
    assert (jobs[1].array_job_id, jobs[1].array_tasks, jobs[2].array_job_id, jobs[2].array_tasks) == (1, "1-3", 1, "")
    assert (jobs[5].het_job_id, jobs[6].het_job_id) == (5, 5)
    assert (jobs[7].array_job_id, jobs[7].het_job_id, jobs[7].array_tasks, jobs[7].reservation) == (0, 0, "", "")
    assert jobs[8].reservation == "maint"


# `scontrol show reservation --oneliner` as the lab's 24.11 printed it (22.05 and 26.05 print the same fields)
RESV_LINES = (
    "ReservationName=r1 StartTime=2026-12-07T17:59:13 EndTime=2026-12-07T18:59:13 Duration=01:00:00 "
    "Nodes=gpu[001-004] NodeCnt=4 CoreCnt=64 Features=(null) PartitionName=(null) Flags=SPEC_NODES TRES=cpu=64 "
    "Users=nobody Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE BurstBuffer=(null) MaxStartDelay=(null)\n"
    "ReservationName=f1 StartTime=2026-12-07T19:59:13 EndTime=2027-12-07T19:59:13 Duration=365-00:00:00 "
    "Nodes=gpu[009-010] NodeCnt=2 CoreCnt=32 Features=(null) PartitionName=(null) Flags=MAINT,SPEC_NODES "
    "TRES=cpu=32 Users=root Groups=(null) Accounts=(null) Licenses=(null) State=INACTIVE Comment=Nodes=gpu999 x\n")


def test_reservations_are_read_and_kept_off_by_time() -> None:
    """Both reservations, their times as this machine's clock reads scontrol's local times; a job started
    at 18:00 keeps off r1 (active), and off f1 (from 19:59) only when its time limit reaches it: 1 h does
    not, 2 h and no limit do. A Comment cannot name nodes."""
    (r1, f1), problems = parse_reservations_text(RESV_LINES)
    assert not problems and (r1.name, r1.nodes, f1.nodes) == ("r1", ("gpu001", "gpu002", "gpu003", "gpu004"),
                                                              ("gpu009", "gpu010"))
    at = time.mktime(time.strptime("2026-12-07T18:00:00", "%Y-%m-%dT%H:%M:%S"))
    assert r1.start < at < r1.end < f1.start
    assert reserved_nodes([r1, f1], at, 3600) == r1.nodes
    assert reserved_nodes([r1, f1], at, 7200) == r1.nodes + f1.nodes
    assert reserved_nodes([r1, f1], at, None) == r1.nodes + f1.nodes
    assert reserved_nodes([r1, f1], r1.end + 1, 600) == ()  # r1 over, f1 not yet


@pytest.mark.parametrize("text,names", [("No reservations in the system\n", []),
                                        ("ReservationName=lic StartTime=2026-12-07T17:59:13 "
                                         "EndTime=2026-12-07T18:59:13 Nodes=(null) Licenses=fs:1\n", ["lic"])])
def test_no_reservations_or_one_without_nodes(text: str, names: list[str]) -> None:
    got, problems = parse_reservations_text(text)
    assert [r.name for r in got] == names and all(not r.nodes for r in got) and not problems


def test_a_reservation_placer_cannot_read_is_kept_off_or_is_an_error() -> None:
    """A time it cannot read: said, and the nodes kept off always. No name or node list, or a node list
    that is not one: an error naming the line (a reservation missed would send jobs where none start).
    Nothing at all is an error too: with none, Slurm says so."""
    (r,), problems = parse_reservations_text(RESV_LINES.splitlines()[0].replace("EndTime=2026-12-07T18:59:13",
                                                                                "EndTime=Unknown"))
    assert (r.start, r.end) == (0.0, float("inf")) and problems and "cannot read its StartTime/EndTime" in problems[0]
    for bad, said in (("Nodes=gpu[001-004]\n", "line 1: no ReservationName"),
                      ("ReservationName=x StartTime=2026-12-07T17:59:13\n", "no ReservationName or Nodes"),
                      ("No reservations in the system\nReservationName=x Nodes=gpu[004-001]\n", "line 2 (x)"),
                      ("", "printed nothing"), (" \n\n", "printed nothing")):
        with pytest.raises(BackendError, match=re.escape(said)):
            parse_reservations_text(bad)


def _saved_cluster(base: Path) -> None:
    """Saved outputs of a 24.11-shaped cluster: n003 MIXED with no job placer can see (PrivateData=jobs),
    n004 ALLOCATED, every other node idle; reservation r1 on n[009-010], active now."""
    def group(state: str, names: str) -> dict:
        return {"node": {"state": [state]}, "nodes": {"nodes": [names]}, "features": {"active": "h100"},
                "gres": {"total": "gpu:h100:8"}, "reason": {"description": ""}, "partition": {"name": "gpu"}}

    groups = [group("IDLE", "n[001-002]"), group("MIXED", "n003"), group("ALLOCATED", "n004"),
              group("IDLE", "n[005-128]")]
    (base / "sinfo.json").write_text(json.dumps({"sinfo": groups}))
    (base / "squeue.json").write_text(json.dumps({"jobs": []}))
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))  # noqa: E731
    now = time.time()
    (base / "reservations.txt").write_text(
        f"ReservationName=r1 StartTime={stamp(now - 600)} EndTime={stamp(now + 86400)} Duration=1-00:00:00 "
        "Nodes=n[009-010] NodeCnt=2 Users=nobody State=ACTIVE\n")


def test_a_snapshot_document_keeps_busy_nodes_and_reservations(tmp_path: Path, capsys) -> None:
    """`placer slurm snapshot` lists nodes Slurm shows busy with no job placer can see, and Slurm's
    reservations; `plan --state`, `status --state` and `replace --plan` keep off both. Before 2026-12-07
    the document carried neither, and a plan from it used all four nodes."""
    from cli.main import main
    from topology import dump_inventory

    _saved_cluster(tmp_path)
    inv, snap = tmp_path / "inv.yaml", tmp_path / "snap.json"
    inv.write_text(dump_inventory(FABRIC))
    assert main(["slurm", "snapshot", "--inventory", str(inv), "--from-dir", str(tmp_path), "-o", str(snap)]) == 0
    doc = json.loads(snap.read_text())
    assert [(b["node"], b["reason"]) for b in doc["busy_nodes"]] == [("n003", TAKEN_HIDDEN), ("n004", TAKEN_HIDDEN)]
    (r,) = doc["reservations"]
    assert (r["name"], r["nodes"]) == ("r1", "n[009-010]") and r["start"] < time.time() < r["end"]
    off = {"n003", "n004", "n009", "n010"}
    jobs = tmp_path / "jobs.yaml"
    for nodes, placed in ((124, True), (125, False)):
        jobs.write_text(f"- {{job_id: big, gpus: {8 * nodes}}}\n")
        capsys.readouterr()
        assert main(["plan", "--inventory", str(inv), "--state", str(snap), "--jobs", str(jobs), "--solver",
                     "greedy", "--format", "json"]) == 0
        (p,) = json.loads(capsys.readouterr().out)["placements"]
        assert (p["status"] == "placed") == placed, p["reason"]
        assert not off & set(p["nodes"])
    capsys.readouterr()
    assert main(["status", "--inventory", str(inv), "--state", str(snap)]) == 0
    text = capsys.readouterr().out
    assert "in Slurm reservations now (not counted free): r1 n[009-010]" in text, text


def test_a_replacement_from_a_snapshot_document_keeps_off_its_reservations() -> None:
    """`placer replace --plan` on a snapshot: a job on n001-n008 loses n008; its leaf's free nodes are
    n009-n016, and n009-n015 are in a reservation: the replacement is n016."""
    from placer.plan_doc import document, plan_row
    from plugins.replace_flow import job_in_plan, replace_nodes

    nodes = [f"n{k:03d}" for k in range(1, 9)]
    row = plan_row(job="7", status="placed", gpus=64, nodes=nodes, gpu_ids={n: list(range(8)) for n in nodes},
                   leaves=1, leaf_lower_bound=None, pods=None, pod_lower_bound=None, cost=None, reason="running")
    now = time.time()
    for resv, off in (([], set()), ([{"name": "r1", "nodes": "n[009-015]", "start": now - 60, "end": None}],
                                    {f"n{k:03d}" for k in range(9, 16)})):
        doc = document(FABRIC, [row], {}, reservations=resv) if resv else document(FABRIC, [row], {})
        view = job_in_plan(FABRIC, doc, "7", "snap.json")
        (r,) = replace_nodes(FABRIC, view, ["n008"], 0, None).plan.replacements
        assert r.node is not None and r.node not in off and 9 <= int(r.node[1:]) <= 16, r  # its own leaf
        assert r.node == "n016" or not off, r


def test_why_from_a_snapshot_document_keeps_off_its_reservations(tmp_path: Path, capsys) -> None:
    """Offline `why` on a snapshot with busy nodes and a reservation: a 125-node job cannot fit now (124
    nodes are outside them), a 124-node one can, at --now; the reservation is over at --now + 2 days."""
    from cli.main import main
    from topology import dump_inventory

    _saved_cluster(tmp_path)
    inv, snap = tmp_path / "inv.yaml", tmp_path / "snap.json"
    inv.write_text(dump_inventory(FABRIC))
    assert main(["slurm", "snapshot", "--inventory", str(inv), "--from-dir", str(tmp_path), "-o", str(snap)]) == 0
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- {job_id: fits, gpus: 992}\n- {job_id: big, gpus: 1000}\n")
    said = {}
    for job, at in (("fits", time.time()), ("big", time.time()), ("big", time.time() + 2 * 86400)):
        capsys.readouterr()
        assert main(["why", job, "--inventory", str(inv), "--state", str(snap), "--jobs", str(jobs), "--now",
                     str(at), "--format", "json"]) == 0
        said[(job, at > time.time() + 3600)] = json.loads(capsys.readouterr().out)
    verdicts = {k: v["verdict"] for k, v in said.items()}
    assert verdicts == {("fits", False): "fits-now", ("big", False): "waits", ("big", True): "fits-now"}, said


@st.composite
def _snapshots(draw: st.DrawFn) -> SlurmSnapshot:
    """Any state Slurm may show of FABRIC's nodes (some left out, some listed twice), running jobs on
    distinct GPUs, busy and full nodes, reservations."""
    names = FABRIC.node_names
    picked = draw(st.lists(st.sampled_from(names), min_size=1, max_size=24, unique=True))
    nodes = [SlurmNode(n, draw(st.sampled_from(["up", "up", "drain", "down"])), busy=draw(st.booleans()),
                       full=draw(st.booleans())) for n in picked]
    nodes += [SlurmNode(n, "up") for n in names if n not in picked and draw(st.booleans())]
    jobs, taken = [], set()
    for k in range(draw(st.integers(0, 6))):
        on = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        ids = {n: tuple(g for g in draw(st.sets(st.integers(0, 7), max_size=8)) if (n, g) not in taken) for n in on}
        taken |= {(n, g) for n, gs in ids.items() for g in gs}
        jobs.append(SlurmJob(job_id=k + 1, name=f"j{k}", state="RUNNING", node_count=len(on), nodes=tuple(on),
                             gpu_ids=ids))
    resv = [SlurmReservation(f"r{k}", tuple(draw(st.lists(st.sampled_from(names), max_size=4, unique=True))),
                             draw(st.floats(0, 2e9)), draw(st.sampled_from([float("inf"), 2.5e9])))
            for k in range(draw(st.integers(0, 2)))]
    return SlurmSnapshot(tuple(nodes), tuple(jobs), reservations=tuple(resv))


@settings(max_examples=60, deadline=None)
@given(_snapshots())
def test_a_snapshot_document_reads_back_as_the_live_state(snap: SlurmSnapshot) -> None:
    """What `placer slurm snapshot` writes, read back (`plan --state`), is the state placer had live: the
    same GPUs taken and nodes in service, and the same reservations. (Before 2026-12-07 busy nodes, nodes
    Slurm does not list and reservations were lost on the way.)"""
    from placer.plan_doc import apply_plan_document
    from plugins.snapshot import reservations_of, snapshot_document
    from topology import ClusterState

    report = to_cluster_state(FABRIC, snap)
    doc = json.loads(json.dumps(snapshot_document(FABRIC, snap, report, "test")))
    again = ClusterState(FABRIC)
    apply_plan_document(FABRIC, again, doc, "snap.json")
    assert (again.free_mask == report.state.free_mask).all() and (again.usable == report.state.usable).all()
    assert reservations_of(doc, "snap.json") == snap.reservations


def test_a_hero_reservation_keeps_off_slurms_reservations(tmp_path: Path, capsys) -> None:
    """`placer reserve` on a snapshot with reservation r1 on n[009-010] (and n003, n004 busy for good): 124
    nodes are planned off all four and the text names r1; 126 cannot be, and the error says why. Before
    2026-12-07 the plan took n009-n010, and Slurm would have refused its `scontrol create reservation`."""
    from cli.main import main
    from topology import dump_inventory

    _saved_cluster(tmp_path)
    inv, snap = tmp_path / "inv.yaml", tmp_path / "snap.json"
    inv.write_text(dump_inventory(FABRIC))
    assert main(["slurm", "snapshot", "--inventory", str(inv), "--from-dir", str(tmp_path), "-o", str(snap)]) == 0
    base = ["reserve", "--inventory", str(inv), "--state", str(snap), "--within", "all"]
    capsys.readouterr()
    assert main([*base, "--gpus", "992", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kept_off_reservations"] == [{"name": "r1", "nodes": "n[009-010]"}]
    got = set(expand(doc["plans"][0]["nodes"]))
    assert len(got) == 124 and not got & {"n003", "n004", "n009", "n010"} and doc["plans"][0]["starts_in_s"] == 0
    assert main([*base, "--gpus", "992"]) == 0
    assert "Kept off Slurm's reservations the plans would overlap: r1 n[009-010]" in capsys.readouterr().out
    assert main([*base, "--gpus", "1008"]) == 2
    assert "(kept off Slurm's reservations r1)" in capsys.readouterr().err


def test_a_hero_reservation_keeps_off_only_the_reservations_it_would_overlap(tmp_path: Path, capsys) -> None:
    """Reservation r1 on n[009-010] starts in 5 days. A hero run of a day starting now (the default
    --duration-s) ends before it: it may use n009-n010, and 1,008 GPUs (126 nodes: all but n003, n004) fit.
    One of 6 days would overlap it: kept off r1. Before 2026-12-08 every reservation not over was kept off."""
    from cli.main import main
    from topology import dump_inventory

    _saved_cluster(tmp_path)
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))  # noqa: E731
    now = time.time()
    (tmp_path / "reservations.txt").write_text(
        f"ReservationName=r1 StartTime={stamp(now + 5 * 86400)} EndTime={stamp(now + 6 * 86400)} "
        "Duration=1-00:00:00 Nodes=n[009-010] NodeCnt=2 Users=nobody State=INACTIVE\n")
    inv, snap = tmp_path / "inv.yaml", tmp_path / "snap.json"
    inv.write_text(dump_inventory(FABRIC))
    assert main(["slurm", "snapshot", "--inventory", str(inv), "--from-dir", str(tmp_path), "-o", str(snap)]) == 0
    base = ["reserve", "--inventory", str(inv), "--state", str(snap), "--within", "all", "--format", "json"]
    for gpus, days, kept in ((1008, 1, False), (992, 6, True)):
        capsys.readouterr()
        assert main([*base, "--gpus", str(gpus), "--duration-s", str(days * 86400)]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert bool(doc["kept_off_reservations"]) == kept, doc
        got = set(expand(doc["plans"][0]["nodes"]))
        assert ({"n009", "n010"} <= got) != kept and doc["plans"][0]["starts_in_s"] == 0, doc
