"""The trace replayer: schedules checked by hand, metrics, trace formats, the command.

Fabric for the hand-checked schedules:

        top
       /   \\
     l1     l2
   n[1-2]  n[3-4]        8 GPUs per node, 32 GPUs in all
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from placer.jobs import JobRequest
from placer.sim import SimConfig, simulate
from placer.tracegen import scale_to_load
from placer.traces import parse_csv_trace, parse_sacct, parse_swf
from topology import load_inventory_text

from .conftest import dedent, shared_file

FABRIC, _ = load_inventory_text(dedent("""
    version: 1
    node_types: {g8: {gpus: 8}}
    defaults: {type: g8}
    switches:
      - {name: top}
      - {name: l1, parent: top, nodes: "n[1-2]"}
      - {name: l2, parent: top, nodes: "n[3-4]"}
    """))


def J(jid: str, gpus: int, submit: float, dur: float) -> JobRequest:
    return JobRequest(jid, gpus, submit_time=submit, duration=dur)


def run(jobs, backfill="easy", policy="placer", hold_s=0.0):
    """Placer's hold is off unless asked: these cases are about where jobs go, not how long they wait."""
    recs, summ = simulate(FABRIC, jobs, policy, SimConfig(backfill=backfill, hold_s=hold_s))
    return {r.job.job_id: r for r in recs}, summ


TRACE = [J("j1", 16, 0, 10), J("j2", 32, 1, 5), J("j3", 8, 2, 3), J("huge", 64, 3, 1)]


def test_fcfs_without_backfill() -> None:
    """j2 needs all four nodes: it waits for j1 (t=10); j3 waits behind it (starts at 15)."""
    r, s = run(TRACE, "none")
    assert [(r[j].start, r[j].end) for j in ("j1", "j2", "j3")] == [(0, 10), (10, 15), (15, 18)]
    assert r["huge"].status == "unplaceable" and s["unplaceable"] == 1


def test_easy_backfill_runs_a_job_that_ends_before_the_reservation() -> None:
    """j2's reservation is t=10; j3 (t=2..5) ends before it, so it backfills at once."""
    r, _ = run(TRACE, "easy")
    assert [(r[j].start, r[j].end) for j in ("j1", "j2", "j3")] == [(0, 10), (10, 15), (2, 5)]


def test_easy_backfill_never_delays_the_head() -> None:
    """j3 now runs 20 s: it would hold a node j2 needs at t=10, so it waits until j2 is done."""
    jobs = [J("j1", 16, 0, 10), J("j2", 32, 1, 5), J("j3", 8, 2, 20)]
    r, _ = run(jobs, "easy")
    assert (r["j2"].start, r["j3"].start) == (10, 15)


def test_backfill_may_use_nodes_the_head_does_not_need() -> None:
    """The head needs 2 nodes at t=10 (when j1 ends); a long 1-node job can take a node j1 does not free."""
    jobs = [J("j1", 24, 0, 10), J("head", 16, 1, 5), J("long", 8, 2, 100)]
    r, _ = run(jobs, "easy")
    assert r["long"].start == 2 and r["head"].start == 10


@pytest.mark.parametrize("policy", ["placer", "slurm-tree", "slurm-tree-24.05", "best-fit", "first-fit"])
def test_every_policy_runs_the_same_schedule_here(policy: str) -> None:
    r, s = run(TRACE, "easy", policy)
    assert s["placed"] == 3 and r["j2"].start == 10


def test_first_fit_takes_the_lowest_named_nodes() -> None:
    r, _ = run([J("a", 8, 0, 5), J("b", 16, 0, 5)], policy="first-fit")
    assert [n for n, _ in r["a"].alloc] == [0] and [n for n, _ in r["b"].alloc] == [1, 2]


def test_metrics_leaf_bound_and_unavoidable_pairs() -> None:
    """3 nodes on leaves of 2: bound 2 leaves; of its 3 node pairs, 2 must cross leaves."""
    r, s = run([J("three", 24, 0, 3600)])
    rec = r["three"]
    assert (rec.leaves, rec.leaf_bound, rec.cross_pairs, rec.unavoidable_pairs) == (2, 2, 2, 2)
    assert s["at_leaf_lower_bound"] == 1.0 and s["excess_cross_leaf_pairs"] == 0.0
    assert s["utilisation"] == pytest.approx(24 / 32)


def test_first_fit_scatters_where_placer_does_not() -> None:
    """Both 1-GPU jobs share n1 under either policy. The pair then has l2 whole: placer takes it (one
    leaf); first-fit takes the lowest names, n2 and n3, across both leaves."""
    jobs = [J("s1", 1, 0, 100), J("s2", 1, 0, 100), J("pair", 16, 1, 10)]
    ours, s_ours = run(jobs, policy="placer")
    ff, s_ff = run(jobs, policy="first-fit")
    assert [n for n, _ in ours["s1"].alloc] == [n for n, _ in ours["s2"].alloc] == [0]
    assert [n for n, _ in ours["pair"].alloc] == [2, 3] and s_ours["at_leaf_lower_bound"] == 1.0
    assert [n for n, _ in ff["pair"].alloc] == [1, 2] and ff["pair"].leaves == 2
    assert s_ff["at_leaf_lower_bound"] == 0.0 and s_ff["excess_cross_leaf_pairs"] == 1.0


def test_beyond_the_bound_by_choice_separates_the_policy_from_the_state() -> None:
    """n1 busy. A pair could take l2 whole: first-fit takes n2+n3 anyway (beyond its bound by choice),
    placer takes l2. With n1 and n3 busy (b on n2 ends first), n2+n4 is all there is: beyond the bound,
    not by choice."""
    jobs = [J("a", 8, 0, 100), J("pair", 16, 1, 10)]
    ours, s_ours = run(jobs, policy="placer")
    ff, s_ff = run(jobs, policy="first-fit")
    assert (s_ours["at_leaf_lower_bound"], s_ours["beyond_bound_by_choice"]) == (1.0, 0.0)
    assert (s_ff["at_leaf_lower_bound"], s_ff["beyond_bound_by_choice"]) == (0.0, 1.0)
    assert ff["pair"].leaf_bound_now == 1 and ff["pair"].leaves == 2
    jobs = [J("a", 8, 0, 100), J("b", 8, 0, 5), J("c", 8, 0, 100), J("pair", 16, 6, 10)]
    for policy in ("placer", "first-fit"):
        r, s = run(jobs, policy=policy)
        assert (r["pair"].leaves, r["pair"].leaf_bound_now) == (2, 2)
        assert (s["at_leaf_lower_bound"], s["beyond_bound_by_choice"]) == (0.0, 0.0)


# -- trace formats ---------------------------------------------------------------------------------
SWF = """; a comment
1 0 5 100 8 -1 -1 8 200 -1 1 1 1 1 1 1 -1 -1
2 10 0 50 -1 -1 -1 16 100 -1 1 1 1 1 1 1 -1 -1
3 20 0 -1 8 -1 -1 8 100 -1 0 1 1 1 1 1 -1 -1
4 30 0 60 0 -1 -1 0 100 -1 1 1 1 1 1 1 -1 -1
"""


def test_swf() -> None:
    problems: list = []
    t = parse_swf(SWF, problems)
    assert problems == []
    assert [(j.job_id, j.gpus, j.submit_time, j.duration) for j in t.jobs] == [("1", 8, 0, 100), ("2", 16, 10, 50)]
    assert t.skipped == {"no run time": 1, "no processors (GPUs)": 1}


@pytest.mark.parametrize("text,line,fragment", [
    ("1 0 5 100 8\n", 1, "expected 18 fields, got 5"),
    ("; x\n1 0 5 abc 8 -1 -1 8 200 -1 1 1 1 1 1 1 -1 -1\n", 2, "field 4 is not a number: 'abc'"),
])
def test_swf_errors(text, line, fragment) -> None:
    problems: list = []
    parse_swf(text, problems)
    assert problems[0].line == line and fragment in problems[0].message


SACCT = """JobID|Submit|Start|End|ReqTRES|AllocTRES|NNodes|State
100|2026-01-01T00:00:00|2026-01-01T00:01:00|2026-01-01T01:01:00|billing=8,gres/gpu=8|cpu=8,gres/gpu=8|1|COMPLETED
100.batch|2026-01-01T00:00:00|2026-01-01T00:01:00|2026-01-01T01:01:00||cpu=8|1|COMPLETED
101|2026-01-01T00:10:00|2026-01-01T00:20:00|2026-01-01T00:30:00|gres/gpu:h100=16|gres/gpu:h100=16,node=2|2|COMPLETED
102|2026-01-01T00:11:00|Unknown|Unknown|gres/gpu=8||1|CANCELLED
103|2026-01-01T00:12:00|2026-01-01T00:13:00|2026-01-01T00:14:00|cpu=4|cpu=4|1|COMPLETED
"""


def test_sacct() -> None:
    problems: list = []
    t = parse_sacct(SACCT, problems)
    assert problems == []
    assert [(j.job_id, j.gpus, j.gpus_per_node, j.submit_time, j.duration) for j in t.jobs] == [
        ("100", 8, None, 0.0, 3600.0), ("101", 16, 8, 600.0, 600.0)]
    assert t.skipped == {"job steps": 1, "never ran (no start/end)": 1, "no GPUs": 1}


@pytest.mark.parametrize("text,line,fragment", [
    ("JobID|Submit\n1|x\n", 1, "sacct header lacks"),
    (SACCT.splitlines()[0] + "\n1|2|3\n", 2, "expected 8 '|'-separated fields, got 3"),
    (SACCT.splitlines()[0] + "\n1|yesterday|x|y|||1|C\n", 2, "unreadable time"),
])
def test_sacct_errors(text, line, fragment) -> None:
    problems: list = []
    parse_sacct(text, problems)
    assert problems[0].line == line and fragment in problems[0].message


def test_csv_trace_needs_durations() -> None:
    problems: list = []
    parse_csv_trace("job_id,submit_time,duration,gpus\na,0,,8\n", problems)
    assert "needs submit_time and duration" in problems[0].message


def test_load_scaling() -> None:
    jobs = [J(f"x{i}", 8, i * 100.0, 50.0) for i in range(11)]
    scaled = scale_to_load(jobs, total_gpus=32, load=0.5)
    work = 11 * 8 * 50.0
    span = (scaled[-1].submit_time or 0.0) - (scaled[0].submit_time or 0.0)
    assert work / (32 * span) == pytest.approx(0.5)


# -- the command -------------------------------------------------------------------------------------
def test_simulate_command(capsys, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    from topology import dump_inventory

    inv.write_text(dump_inventory(FABRIC))
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time,duration,gpus\nj1,0,10,16\nj2,1,5,32\nj3,2,3,8\n")
    out = tmp_path / "sim.json"
    plots = tmp_path / "plots"
    code = main(["simulate", "--inventory", str(inv), "--trace", str(trace), "--out", str(out), "--plot", str(plots)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert stdout.splitlines()[1].split()[:3] == ["POLICY", "PLACED", "MULTI"]
    assert [line.split()[0] for line in stdout.splitlines()[2:]] == ["placer", "slurm-tree", "first-fit"]
    doc = json.loads(out.read_text())
    assert doc["schema"] == "placer.plan/v1" and [r["policy"] for r in doc["runs"]] == ["placer", "slurm-tree",
                                                                                          "first-fit"]
    j3 = next(p for p in doc["placements"] if p["job"] == "j3")
    assert (j3["start"], j3["end"], j3["wait"]) == (2, 5, 0)
    assert sorted(p.name for p in plots.iterdir()) == [
        "leaf-occupancy-first-fit.png", "leaf-occupancy-placer.png", "leaf-occupancy-slurm-tree.png",
        "leaves-over-bound.png", "utilisation.png", "wait-cdf.png"]
    assert all(p.stat().st_size > 5000 for p in plots.iterdir())
    bad = tmp_path / "bad.swf"
    bad.write_text("1 0 5 100 8\n")
    code = main(["simulate", "--inventory", str(inv), "--trace", str(bad)])
    assert code == 2 and f"{bad}:1: error:" in capsys.readouterr().err
    code = main(["simulate", "--inventory", str(inv), "--trace", str(trace), "--policy", "random"])
    assert code == 2 and "unknown policy random" in capsys.readouterr().err


def test_a_sacct_trace_with_a_job_name_that_is_not_utf8_is_replayed_saying_so(capsys, tmp_path: Path) -> None:
    """`sacct --parsable2 --format=...,JobName`: a user's name in Latin-1 is a count on stderr, not a refused
    year of history (before 2026-12-07: "not a UTF-8 text file")."""
    lines = SACCT.splitlines()
    rows = [lines[0] + "|JobName"] + [line + ("|caf\u00e9" if i == 1 else "|train") for i, line in enumerate(lines[1:], 1)]
    trace = tmp_path / "sacct.txt"
    trace.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    code = main(["simulate", "--inventory", "preset:tiny", "--trace", str(trace), "--policy", "best-fit"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"placer: warning: {trace}: 1 byte sequence(s) that are not UTF-8, the first at byte" in err, err
    assert out.splitlines()[2].split()[:2] == ["best-fit", "2"]  # jobs 100 and 101 placed, as without the name


def test_trace_generate_from_alibaba(capsys, tmp_path: Path) -> None:
    src = shared_file("traces/alibaba-spot-2026/worker_count_distribution.csv").parent
    out = tmp_path / "g.csv"
    code = main(["trace", "generate", "--inventory", "preset:campus-16k", "--from", str(src), "--jobs", "2000",
                 "--load", "0.9", "-o", str(out)])
    assert code == 0
    problems: list = []
    t = parse_csv_trace(out.read_text(), problems)
    assert problems == [] and len(t.jobs) == 2000
    work = sum(j.gpus * (j.duration or 0.0) for j in t.jobs)
    span = (t.jobs[-1].submit_time or 0.0) - (t.jobs[0].submit_time or 0.0)
    assert 0.6 < work / (16384 * span) < 1.3  # Poisson arrivals around the asked load
    assert any(j.gpus > 8 for j in t.jobs) and any(j.gpus == 1 for j in t.jobs)


def test_switches_wait_holds_a_scattered_job_until_its_leaf_frees() -> None:
    """first-fit puts a, b, c on n1, n2, n3; b ends at 3, so at t=4 the pair could start on n2+n4 (two
    leaves). With --switches-wait 60 it waits until a and c end (t=10) and gets l1 whole; with a 4 s
    wait it gives up at t=8 and starts on two leaves."""
    jobs = [J("a", 8, 0, 10), J("b", 8, 0, 3), J("c", 8, 0, 10), J("pair", 16, 4, 5)]

    def pair(cfg):
        recs, _ = simulate(FABRIC, jobs, "first-fit", cfg)
        r = next(r for r in recs if r.job.job_id == "pair")
        return r.start, r.leaves

    assert pair(SimConfig()) == (4, 2)
    assert pair(SimConfig(switches_wait_s=60)) == (10, 1)
    assert pair(SimConfig(switches_wait_s=4)) == (8, 2)


def test_switches_wait_counts_from_the_first_evaluation_not_from_submission() -> None:
    """All four nodes busy until b and c end at t=10 (n2 + n3: two leaves). The pair, submitted at 1,
    is first evaluated at 10, so a 5 s wait lasts until 15 (as Slurm's wait4switch_start), not until 6;
    with 15 s it is still waiting when a and d end at 20 and gets leaf l1 whole."""
    jobs = [J("a", 8, 0, 20), J("b", 8, 0, 10), J("c", 8, 0, 10), J("d", 8, 0, 20), J("pair", 16, 1, 5)]

    def pair(wait: float):
        recs, _ = simulate(FABRIC, jobs, "first-fit", SimConfig(switches_wait_s=wait))
        r = next(r for r in recs if r.job.job_id == "pair")
        return r.start, r.leaves

    assert pair(5) == (15, 2)
    assert pair(15) == (20, 1)


def test_placer_holds_only_when_the_timeline_says_its_leaf_frees_in_time() -> None:
    """Placer's scheduler looks at the running jobs' ends instead of waiting blindly: a, b, c on three
    nodes, b ends at 3; at 4 the pair could start on two leaves. The timeline says a leaf frees at 10
    (a and c end). With a 60 s hold it waits and gets one leaf at 10; with 4 s it knows 10 is too late
    and starts at 4 at once (Slurm's blind --switches=1@4 would wait until 8 for nothing)."""
    jobs = [J("a", 8, 0, 10), J("b", 8, 0, 3), J("c", 8, 0, 10), J("pair", 16, 4, 5)]
    for hold, want in ((60.0, (10, 1)), (4.0, (4, 2)), (0.0, (4, 2))):
        r, _ = run(jobs, hold_s=hold)
        assert [len(r[j].alloc) for j in "abc"] == [1, 1, 1]
        assert len({r[j].alloc[0][0] for j in "abc"}) == 3  # three nodes: one leaf has one node free at 4
        assert (r["pair"].start, r["pair"].leaves) == want, hold
    recs, _ = simulate(FABRIC, jobs, "first-fit", SimConfig(switches_wait_s=4))
    assert next((r.start, r.leaves) for r in recs if r.job.job_id == "pair") == (8, 2)


def test_a_long_job_may_hold_a_share_of_its_run_time() -> None:
    """The pair runs 5 s; its leaf frees at 10, 6 s after it arrives. A 4 s hold alone is too short;
    with hold_share 2.0 it may wait 10 s (2 x 5 s) and gets the leaf; with 0.5 (2.5 s, below the 4 s
    floor) or a 5 s cap on any hold it is still too short."""
    jobs = [J("a", 8, 0, 10), J("b", 8, 0, 3), J("c", 8, 0, 10), J("pair", 16, 4, 5)]

    def pair(cfg: SimConfig) -> tuple:
        recs, _ = simulate(FABRIC, jobs, "placer", cfg)
        return next((r.start, r.leaves) for r in recs if r.job.job_id == "pair")

    assert pair(SimConfig(hold_s=4)) == (4, 2)
    assert pair(SimConfig(hold_s=4, hold_share=2.0)) == (10, 1)
    assert pair(SimConfig(hold_s=4, hold_share=0.5)) == (4, 2)
    assert pair(SimConfig(hold_s=4, hold_share=2.0, hold_max_s=5)) == (4, 2)


def _by_id(jobs, cfg):
    recs, _ = simulate(FABRIC, jobs, "first-fit", cfg)
    return {r.job.job_id: r for r in recs}


def test_a_head_waiting_for_its_bound_reserves_the_later_placement_and_backfill_keeps_off_it() -> None:
    """b ends at 3, so from t=4 the pair could run on n2 + n4 (two leaves); it waits. Its reservation is
    not that scattered pair but l1 at t=10 (when a and c end), the first projected time it fits in one
    leaf: the 100 s filler arriving at 5 is placed off n1/n2 (on n4) and starts at once."""
    jobs = [J("a", 8, 0, 10), J("b", 8, 0, 3), J("c", 8, 0, 10), J("pair", 16, 4, 5), J("filler", 8, 5, 100)]
    r = _by_id(jobs, SimConfig(switches_wait_s=60))
    assert (r["pair"].start, r["pair"].leaves) == (10, 1)
    assert r["filler"].start == 5 and [n for n, _ in r["filler"].alloc] == [3]


def test_a_head_whose_wait_ends_first_reserves_its_placement_at_the_deadline() -> None:
    """With a 3 s wait (from t=4) no one-leaf placement comes before t=7: the reservation is the
    placement at the deadline (n2 + n4), the 100 s filler may not take those nodes, and the pair starts
    at 7 on two leaves; the filler follows at 10 when n1 frees."""
    jobs = [J("a", 8, 0, 10), J("b", 8, 0, 3), J("c", 8, 0, 10), J("pair", 16, 4, 5), J("filler", 8, 5, 100)]
    r = _by_id(jobs, SimConfig(switches_wait_s=3))
    assert (r["pair"].start, r["pair"].leaves) == (7, 2)
    assert r["filler"].start == 10


def test_simulate_command_switches_wait(capsys, tmp_path: Path) -> None:
    """The command carries --switches-wait to the scheduler: the pair of the hand-checked case above
    waits for leaf l1 (t=10), and the setting is recorded in the result."""
    from topology import dump_inventory

    inv = tmp_path / "inv.yaml"
    inv.write_text(dump_inventory(FABRIC))
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time,duration,gpus\na,0,10,8\nb,0,3,8\nc,0,10,8\npair,4,5,16\n")
    out = tmp_path / "sim.json"
    code = main(["simulate", "--inventory", str(inv), "--trace", str(trace), "--policy", "first-fit",
                 "--switches-wait", "60", "--out", str(out), "--format", "json"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    pair = next(p for p in doc["placements"] if p["job"] == "pair")
    assert (pair["start"], pair["leaves"]) == (10, 1)
    assert json.dumps(doc).count('"switches_wait_s": 60') == 1


def test_small_jobs_by_end_and_hold_from_room_are_on_by_default_and_can_be_turned_off(capsys, tmp_path: Path) -> None:
    """Since 2026-12-05 (issue 18) both rules are placer's default everywhere: the simulator, `placer apply`
    and `placer why` (site config), the planner; `placer simulate --no-…` turns each off and says so."""
    from cli.config import load_config
    from placer import PlannerConfig
    from placer.sim import replay_planner
    from placer.timeline import HoldRule
    from topology import dump_inventory

    site = load_config(None)
    assert PlannerConfig().small_jobs_by_end and replay_planner().small_jobs_by_end and site.small_jobs_by_end
    assert SimConfig().hold_from_room and SimConfig().planner.small_jobs_by_end
    assert HoldRule().from_room and site.hold().from_room
    inv = tmp_path / "inv.yaml"
    inv.write_text(dump_inventory(FABRIC))
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time,duration,gpus\nj1,0,10,16\nj2,1,5,32\nj3,2,3,8\n")
    for flags, on in (([], True), (["--no-small-jobs-by-end", "--no-hold-from-room"], False)):
        out = tmp_path / f"sim-{on}.json"
        code = main(["simulate", "--inventory", str(inv), "--trace", str(trace), "--policy", "placer",
                     "--out", str(out), *flags])
        assert code == 0, capsys.readouterr().err
        doc = json.loads(out.read_text())
        text = json.dumps(doc)
        assert f'"small_jobs_by_end": {str(on).lower()}' in text and f'"hold_from_room": {str(on).lower()}' in text


def test_placer_simulate_reservation_moves_is_recorded_and_lets_a_one_node_job_in(tmp_path: Path) -> None:
    """`--reservation-moves` (off by default) reaches the scheduler and the result says it: the hand case of
    tests/test_scheduler_properties.py, where j2 starts at 4 instead of 22 and the head keeps 22."""
    from topology import dump_inventory

    from .test_scheduler_properties import FABRIC as THREE_LEAVES

    inv = tmp_path / "inv.yaml"
    inv.write_text(dump_inventory(THREE_LEAVES))
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time,duration,gpus\nj0,3,38,16\nj1,3,39,32\nj2,4,33,8\nj3,0,22,48\n")
    for flags, moves, j2_start in (([], 0, 22.0), (["--reservation-moves", "2"], 2, 4.0)):
        out = tmp_path / f"sim-{moves}.json"
        assert main(["simulate", "--inventory", str(inv), "--trace", str(trace), "--policy", "placer",
                     "--out", str(out), *flags]) == 0
        doc = json.loads(out.read_text())
        assert doc["trace"]["reservation_moves"] == moves
        starts = {p["job"]: p["start"] for p in doc["placements"]}
        assert (starts["j1"], starts["j2"]) == (22.0, j2_start)
