"""`placer apply --state-file`: the hold clock kept between processes (plugins/hold_clock_file.py)."""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placer import PlannerConfig
from plugins.apply import ApplyReport, apply_loop
from plugins.backend import HoldClock, SlurmJob, SlurmNode
from plugins.hold_clock_file import clock_text, load_clock, save_clock, save_if_changed
from topology import RequestError
from topology.generate import design_for, generate
from topology.hostlists import expand

from .test_apply_scheduler import cluster, held
from .test_serve_unit import FABRIC, RecordingSlurm

FABRIC_TINY = generate(design_for("tiny", rails=0))


def FakeSlurmNodes() -> list[SlurmNode]:  # noqa: N802 - reads as the fake's node list
    return [SlurmNode(n, "up", partitions=("gpu",)) for n in FABRIC_TINY.node_names]


def test_a_clock_survives_a_save_and_a_load(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load_clock(path) == HoldClock()  # no file yet: a first run
    clock = HoldClock({5, 9}, {9: 1_796_000_000.5})
    save_clock(path, clock)
    assert load_clock(path) == clock
    assert json.loads(path.read_text()) == {"version": 1, "waited": [5, 9], "eligible_at": {"9": 1_796_000_000.5}}
    assert path.stat().st_mode & 0o777 == 0o640  # the daemon, in the units' one group, reads it


@pytest.mark.parametrize(("text", "said"), [
    ("", "not valid JSON"),
    ("[]", "not a JSON object"),
    ('{"version": 1, "waited": []}', "eligible_at: missing"),
    ('{"version": 1, "waited": [], "eligible_at": {}, "later": 1}', "later: unknown key"),
    ('{"version": 2, "waited": [], "eligible_at": {}}', "version: 2: this placer reads version 1"),
    ('{"version": true, "waited": [], "eligible_at": {}}', "version: True: this placer reads version 1"),
    ('{"version": 1, "waited": [0, "x"], "eligible_at": {}}', "waited: not a list of job ids"),
    ('{"version": 1, "waited": [5], "eligible_at": {"5": -1}}', "eligible_at.5: -1 is not a time"),
    ('{"version": 1, "waited": [5], "eligible_at": {"6": 1.0}}', "eligible_at.6: a job not in waited"),
    ('{"version": 1, "waited": [], "eligible_at": {"6": 1.0}}', "eligible_at.6: a job not in waited"),
    ('{"version": 1, "waited": [5], "eligible_at": {"j5": 1.0}}', "eligible_at.j5: not a job id"),
    ('{"version": 1, "waited": [5], "eligible_at": {"\u00b2": 1.0}}', "not a job id"),  # a digit int() refuses
    ('{"version": 1, "waited": [5], "eligible_at": {"' + "9" * 5000 + '": 1.0}}', "not a job id"),  # fuzz found
    ('{"version": 1, "waited": [4294967296], "eligible_at": {}}', "waited: not a list of job ids"),
    ('{"version": 1, "version": 1, "waited": [], "eligible_at": {}}', "duplicate key"),
])
def test_a_broken_file_is_refused_naming_the_file_and_the_field_and_left_as_it_was(
        tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(RequestError) as err:
        load_clock(path)
    shown = err.value.render()
    assert said in shown and str(path) in shown and "remove the file to start afresh" in shown, shown
    assert path.read_text() == text


def test_a_missing_directory_is_refused_before_any_pass(tmp_path: Path) -> None:
    with pytest.raises(RequestError) as err:
        load_clock(tmp_path / "absent" / "state.json")
    assert "does not exist" in err.value.render()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["version", "waited", "eligible_at", "5", "x"]), inner, max_size=4),
    max_leaves=12).map(lambda d: json.dumps(d, allow_nan=True))))
def test_any_file_loads_a_clock_or_is_refused_with_problems(tmp_path_factory: pytest.TempPathFactory,
                                                            text: str) -> None:
    path = tmp_path_factory.mktemp("clock") / "state.json"
    path.write_text(text)
    try:
        clock = load_clock(path)
    except RequestError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    assert set(clock.eligible_at) <= clock.waited
    assert load_clock(path) == clock and clock_text(clock)


def test_a_save_that_fails_is_said_in_the_pass_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_clock(path, HoldClock({5}))
    saved = clock_text(HoldClock({5}))
    assert save_if_changed(path, HoldClock({5}), saved, []) == saved  # unchanged: not written again
    errors: list[str] = []
    assert save_if_changed(tmp_path / "gone" / "state.json", HoldClock({6}), saved, errors) == saved
    assert errors and "could not save the hold clock" in errors[0]
    assert load_clock(path) == HoldClock({5}) and not list(tmp_path.glob(".state.json.*"))


def _once(slurm: RecordingSlurm, state: Path | None) -> ApplyReport:
    """One `placer apply --once`, a process of its own (a new clock, or the file's)."""
    return apply_loop(FABRIC, slurm, PlannerConfig(), 600, None, threading.Event(), lambda r: None,
                      state_file=state)


def test_a_cron_once_keeps_a_chained_jobs_hold_clock_in_the_state_file(tmp_path: Path) -> None:
    """Job 5, submitted 2 h ago, waits for its dependency at one `apply --once`; at the next, a new process,
    it is met. With the state file the hold counts from that pass: pinned. Without, from submission:
    released unpinned past the 600 s (as a cron job did before the file)."""
    state = tmp_path / "apply-state.json"
    slurm, pins = cluster()
    slurm.jobs.append(replace(held(5, 8, submitted=time.time() - 7200), dependency="afterok:1(unfulfilled)"))
    first = _once(slurm, state)
    assert [j for j, _ in first.waiting] == [5] and not pins
    assert json.loads(state.read_text())["waited"] == [5]
    slurm.jobs[-1] = replace(slurm.jobs[-1], dependency="")
    fresh_slurm, _ = cluster()
    fresh_slurm.jobs.append(slurm.jobs[-1])
    without = _once(fresh_slurm, None)
    assert [j for j, why in without.released_unpinned] == [5], without
    later = _once(slurm, state)
    assert [j for j, _ in later.pinned] == [5] and not later.released_unpinned, later
    assert set(json.loads(state.read_text())["eligible_at"]) == {"5"}


# -- `placer why` counts the hold as apply does -----------------------------------------------------------
# the tiny fabric of tests/test_why.py: r2 frees leaf p02-su01 in 60 s, so a 24-GPU job now spans three
# leaves and, within its hold, is held for that one leaf
def _busy(now: float) -> list[SlurmJob]:
    ends = {"gpu[001-003]": 600, "gpu[009-012]": 60, "gpu[005-007]": 3000, "gpu[013-015]": None}
    return [SlurmJob(job_id=100 + i, name=f"r{i}", state="RUNNING", node_count=len(expand(h)), gpus_per_job=8 * len(expand(h)),
                     nodes=tuple(expand(h)), gpu_ids={n: tuple(range(8)) for n in expand(h)},
                     end_time=int(now + e) if e else 0) for i, (h, e) in enumerate(ends.items())]


def _chained(now: float, **kw: object) -> SlurmJob:
    """Held by the hook 6 h ago (past the 4 h hold from submission)."""
    return SlurmJob(job_id=7, name="chained", state="PENDING", priority=0, reason="JobHeldUser",
                    admin_comment="placer:steer", node_count=3, gpus_per_node=8, submit_time=int(now - 21600),
                    partition="gpu", **kw)  # type: ignore[arg-type]


def test_why_through_the_daemon_counts_the_hold_from_the_begin_time_or_the_dependency_seen_met() -> None:
    """A job whose begin time came 60 s ago, or whose dependency the daemon saw met 60 s ago, is within its
    hold as apply counts it (held for its bound); counted from submission (before) it was past its hold."""
    from plugins.serve import Daemon, ServeConfig

    from .test_serve_unit import FakeSlurm

    now = time.time()
    for job, seen_met in ((_chained(now, eligible_time=int(now - 60)), False), (_chained(now), True),
                          (_chained(now), False)):
        slurm = FakeSlurm()
        slurm.jobs = [*_busy(now), job]
        d = Daemon(FABRIC_TINY, slurm, ServeConfig(mode="steer", max_hold_s=86400.0))
        if seen_met:
            d.hold_clock = HoldClock({7}, {7: now - 60})
        d.refresh()
        a = d.decide({"v": 1, "op": "why", "job": 7})["why"]
        within = job.eligible_time > 0 or seen_met
        assert a["verdict"] == ("held-for-bound" if within else "starts-beyond-bound"), (job, seen_met, a)


def test_why_on_the_command_line_reads_applys_state_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`placer why` live, with `apply_state_file` in the site config: the chained job apply saw met 60 s ago
    is held for its bound, as apply would; a state file it cannot read is said on stderr and the hold
    counts from submission."""
    import cli.why_cmd as why_cmd
    from cli.cluster_view import ClusterView
    from cli.main import main
    from plugins.backend import SlurmSnapshot, to_cluster_state

    now = time.time()
    jobs = [*_busy(now), _chained(now)]
    snap = SlurmSnapshot(tuple(FakeSlurmNodes()), tuple(jobs))
    view = ClusterView(FABRIC_TINY, to_cluster_state(FABRIC_TINY, snap).state, "fake", snap.partition_nodes(), jobs)
    monkeypatch.setattr(why_cmd, "cluster_view", lambda *a: view)
    state = tmp_path / "apply-state.json"
    save_clock(state, HoldClock({7}, {7: now - 60}))
    config = tmp_path / "placer.yaml"
    config.write_text(f"inventory: preset:tiny\napply_state_file: {state}\n")
    verdicts = []
    for text in (None, "{broken"):
        if text:
            state.write_text(text)
        rc = main(["why", "7", "--config", str(config), "--format", "json"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        verdicts.append((json.loads(out)["verdict"], "apply's state file not read" in err))
    assert verdicts == [("held-for-bound", False), ("starts-beyond-bound", True)]


def test_the_daemon_learns_applys_clock_from_its_state_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """After a daemon restart, a chained job apply saw met 60 s ago is within its hold as apply counts it:
    the daemon's max-hold release leaves it held and `why` says held for its bound. Before the daemon read
    the file, it counted from submission (6 h) and released it unpinned past max_hold_s. A file it cannot
    read is logged once and shown by placer_apply_state_unread; the daemon then counts as before."""
    from plugins.serve import Daemon, ServeConfig

    from .test_serve_unit import metric

    class Releases(RecordingSlurm):
        def __init__(self) -> None:
            super().__init__()
            self.nodes = FakeSlurmNodes()

    now = time.time()
    state = tmp_path / "apply-state.json"
    save_clock(state, HoldClock({7, 8}, {7: now - 60}))  # (8: apply saw it waiting; gone since)
    answers = []
    for path, text in ((state, None), (None, None), (state, "{broken"), (state, "{broken")):
        if text:
            state.write_text(text)
        slurm = Releases()
        slurm.jobs = [*_busy(now), _chained(now)]
        d = Daemon(FABRIC_TINY, slurm, ServeConfig(mode="steer", max_hold_s=3600.0, apply_state_file=path))
        d.refresh()
        verdict = d.decide({"v": 1, "op": "why", "job": 7})["why"]["verdict"] if not slurm.calls else "released"
        answers.append((verdict, slurm.calls, metric(d, "placer_apply_state_unread"), d.hold_clock.waited))
    assert answers == [("held-for-bound", [], 0, {7}), ("released", [("release", 7)], 0, set()),
                       ("released", [("release", 7)], 1, set()), ("released", [("release", 7)], 1, set())]
    assert caplog.text.count("apply's state file not read") == 2  # once per daemon: each is a restart here
    assert state.read_text() == "{broken"  # read, never written


def test_one_apply_at_a_time_uses_a_state_file(tmp_path: Path) -> None:
    """A second `placer apply` on the same state file (a cron --once beside the unit's watch) stops before
    its pass, naming the first's pid (exit 3); once the first ends, the next runs."""
    from plugins.hold_clock_file import one_apply
    from topology import BackendError

    state = tmp_path / "apply-state.json"
    slurm, pins = cluster()
    slurm.jobs.append(held(5, 8, submitted=time.time()))
    with one_apply(state), pytest.raises(BackendError, match=rf"another placer apply \(pid {os.getpid()}\)"):
        _once(slurm, state)
    assert not pins
    assert [j for j, _ in _once(slurm, state).pinned] == [5]
    with pytest.raises(RequestError) as err:
        _once(slurm, tmp_path / "absent" / "apply-state.json")
    assert "does not exist" in err.value.render()
