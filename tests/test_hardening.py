"""Issue 16's reproducers, one test each: inputs that crashed, hung, ate memory or were silently taken.

Each goes through the command line where a user would meet it (exit code, message, nothing written) or
through the daemon where Slurm or the hook would.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.main import main
from plugins.backend import SlurmSnapshot
from plugins.serve import Daemon, ServeConfig, _answer, serve
from plugins.slurm_cli import parse_sinfo_json, parse_squeue_json
from topology import BackendError, InventoryError, dump_inventory, load_inventory_text
from topology.generate import design_for, generate
from topology.hostlists import MAX_HOSTLIST_NAMES, HostlistError, expand
from topology.inputs import parse_json, parse_yaml

from .test_serve_unit import FABRIC, FakeSlurm, daemon

ROOT = Path(__file__).resolve().parent.parent
TINY_INV = dump_inventory(generate(design_for("tiny")))
BIG = "1" + "0" * 5000  # over Python's 4,300-digit int() limit


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return rc, out, err


def inv(text: str) -> str:
    return "version: 1\nnode_types: {a: {gpus: 8}}\ndefaults: {type: a}\n" + text


# -- the daemon --------------------------------------------------------------------------------------------
MALFORMED_SQUEUE = ['{"jobs":[{"job_id":1,"job_state":[]}]}', '{"jobs":[{"job_state":["RUNNING"]}]}',
                    '{"jobs":[7]}', '{"jobs":{"a":1}}', '{"jobs":[{"job_id":"x","job_state":"PENDING"}]}',
                    '{"jobs":[{"job_id":1,"job_state":"RUNNING","gres_detail":["gpu:1(IDX:0-999999999)"],'
                    '"job_resources":{"allocated_nodes":[{"nodename":"gpu001"}]}}]}',
                    '{"jobs":[{"job_id":1,"job_state":"PENDING","partition":["a"]}]}',
                    '{"jobs":[{"job_id":1,"job_state":"PENDING","required_nodes":"n[0-99999999]"}]}',
                    '{"jobs":[{"job_id":' + BIG + ',"job_state":"PENDING"}]}', '[1]', '{"jobs":[{"job_id":1,',
                    '{"jobs":[{"job_id":1,"job_state":"PENDING","job_id":2}]}']
MALFORMED_SINFO = ['{"nodes":[{"state":"idle"}]}', '{"nodes":[3]}', '{"sinfo":[{"nodes":{"nodes":[7]},"node":[]}]}',
                   '{"sinfo":[{"nodes":{"nodes":["n[1-"]}}]}', '{"sinfo":[{"nodes":{"nodes":"n1"}}]}',
                   '{"nodes":[{"name":"n1","state":"idle","gres":"gpu:' + "9" * 30 + '"}]}', '{"sinfo":[]}',
                   '{"nodes":[]}', '{"errors":["boom"],"nodes":[{"name":"n1"}]}']


@pytest.mark.parametrize("text", MALFORMED_SQUEUE)
def test_a_malformed_squeue_record_is_a_backend_error(text: str) -> None:
    with pytest.raises(BackendError):
        parse_squeue_json(text)


@pytest.mark.parametrize("text", MALFORMED_SINFO)
def test_a_malformed_sinfo_document_is_a_backend_error(text: str) -> None:
    with pytest.raises(BackendError):
        parse_sinfo_json(text)


class Flaky(FakeSlurm):
    """Slurm that answers nonsense (a bug's exception, not a BackendError) until told otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.calls = 0

    def snapshot(self) -> SlurmSnapshot:
        self.calls += 1
        if self.broken:
            raise IndexError("list index out of range")  # what slurm_cli raised on job_state: []
        return super().snapshot()


def test_the_refresh_thread_survives_anything_backs_off_and_stale_state_gives_no_advice() -> None:
    slurm = Flaky()
    d = Daemon(FABRIC, slurm, ServeConfig(refresh_s=0.1, min_refresh_gap_s=0.05, max_state_age_s=1.0,
                                          node_poll_s=0))
    d.refresh()
    ask = {"v": 1, "name": "a", "tres_per_job": "gres:gpu:2"}
    assert d.decide(ask)["action"] == "advise"
    slurm.broken = True
    t = threading.Thread(target=d.refresher, daemon=True)
    t.start()
    time.sleep(2.0)
    assert t.is_alive()
    errors = d.metrics.registry.get_sample_value("placer_refresh_errors_total")
    assert errors is not None and 1 <= errors <= 3  # 1 s, then 2 s apart: backing off
    answer = d.decide(ask)
    assert answer["action"] == "none" and "old (max_state_age_s 1)" in answer["reason"]
    slurm.broken = False
    d.wake.set()
    deadline = time.time() + 6
    while d.decide(ask)["action"] != "advise" and time.time() < deadline:
        time.sleep(0.1)
    assert d.decide(ask)["action"] == "advise"  # back as soon as a refresh succeeds
    d.stop.set()
    t.join(5)


@pytest.mark.parametrize("line,fragment", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"v": 1, "min_nodes": ' + BIG.encode() + b"}", "5001 digits"),
    (b'{"v": 1, "min_nodes": NaN}', "not a finite number"),
    (b'{"v": 1, "name": "a", "name": "b"}', "duplicate key"),
    (b"\xff\xfe", "not valid JSON"),
    (b'{"v": 1, "tres_per_job": "gres:gpu:1", "exc_nodes": "a[0-999]b[0-999]"}', "more than placer expands"),
    (b'{"v": 1, "tres_per_job": "gres:gpu:1", "exc_nodes": "' + b"n[0-99999]," * 5000 + b'"}', "more than placer expands"),
])
def test_every_malformed_request_gets_an_answer(line: bytes, fragment: str) -> None:
    d, _ = daemon()
    answer, _ = _answer(d, line)
    assert answer["action"] == "none" and fragment in answer["reason"], answer


def test_a_job_name_that_is_not_utf8_is_decided_as_any_other() -> None:
    """`sbatch -J $'caf\\xe9'`: the hook's cjson sends the name's bytes as they are; the job gets its advice
    (before: "bad request: not UTF-8", and no placement for a job whose name is in Latin-1)."""
    d, _ = daemon()
    answer, _ = _answer(d, b'{"v": 1, "name": "caf\xe9", "comment": "\xff", "tres_per_job": "gres:gpu:8"}')
    assert answer["action"] == "advise", answer


def test_the_socket_answers_deep_huge_and_over_long_requests(tmp_path: Path) -> None:
    cfg = ServeConfig(socket_path=tmp_path / "p.sock", socket_group="root", refresh_s=3600)
    d = Daemon(FABRIC, FakeSlurm(), cfg)
    d.refresh()
    ready = threading.Event()
    t = threading.Thread(target=serve, args=(d, ready), daemon=True)
    t.start()
    assert ready.wait(10)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(cfg.socket_path))
        lines = s.makefile("rwb")
        for raw in (b"[" * 30_000, b'{"v": 1, "x": ' + BIG.encode() + b"}", b'{"v": 1, "x": "' + b"y" * 200_000 + b'"}',
                    b'{"v": 1, "name": "ok", "tres_per_job": "gres:gpu:1"}'):
            lines.write(raw + b"\n")
            lines.flush()
            answer = json.loads(lines.readline())
            assert answer["action"] in ("none", "advise")
        assert answer["action"] == "advise"  # the connection still works after the bad ones
    # a line of 5 MiB: answered before the daemon stops reading it and closes (the peer is then told, not reset)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(cfg.socket_path))

        def flood() -> None:
            try:
                s.sendall(b'{"v": 1, "x": "' + b"y" * (5 << 20))
            except OSError:
                pass  # the daemon closed its end after 4 MiB, as documented

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        assert "over 65536 bytes" in json.loads(s.makefile("rb").readline())["reason"]
        sender.join(10)
    d.stop.set()
    t.join(10)


# -- files -------------------------------------------------------------------------------------------------
def test_duplicate_keys_are_errors_with_their_line(capsys, tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text(inv("nodes:\n  - names: n[1-4]\nnodes:\n  - names: n[1-2]\nswitches:\n  - {name: s1, nodes: 'n[1-4]'}\n"))
    rc, _, err = run(capsys, "topology", "validate", str(f))
    assert rc == 2 and "inv.yaml:6: error: nodes: duplicate key 'nodes' (first at line 4)" in err
    problems: list = []
    parse_json('{"schema": "x", "placements": [], "placements": [1]}', problems)
    assert [p.path for p in problems] == ["placements"]


def test_a_duplicate_placements_key_in_a_state_document_is_refused(capsys, tmp_path: Path) -> None:
    (tmp_path / "jobs.yaml").write_text("- {job_id: a, gpus: 8}\n")
    rc, _, _ = run(capsys, "plan", "--inventory", "preset:tiny", "--jobs", str(tmp_path / "jobs.yaml"),
                   "--solver", "greedy", "--format", "json", "-o", str(tmp_path / "plan.json"))
    assert rc == 0
    text = json.dumps(json.loads((tmp_path / "plan.json").read_text()))
    assert text.count('"placements": [') == 1
    (tmp_path / "state.json").write_text(text.replace('"placements": [', '"placements": [], "placements": ['))
    rc, _, err = run(capsys, "plan", "--inventory", "preset:tiny", "--jobs", str(tmp_path / "jobs.yaml"),
                     "--state", str(tmp_path / "state.json"), "-o", str(tmp_path / "out"))
    assert rc == 2 and "placements: duplicate key" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["null", "1.5", "true", "{a: 1}", "01"])
def test_yaml_values_that_are_not_strings_never_become_names(value: str) -> None:
    with pytest.raises(InventoryError) as err:
        load_inventory_text(inv(f"nodes:\n  - names: [{value}]\nswitches:\n  - name: {value}\n    nodes: [{value}]\n"))
    assert "quote it in YAML" in err.value.render()


@pytest.mark.parametrize("where", [
    "node_types: {{b: {{gpus: {n}}}}}", "nodes:\n  - names: n1\n    reason: {n}", "version: {n}",
])
def test_numbers_of_thousands_of_digits_are_input_errors(where: str) -> None:
    with pytest.raises(InventoryError) as err:
        load_inventory_text(inv(where.format(n=BIG) + "\n"))
    assert "5001 digits" in err.value.render()


def test_huge_numbers_everywhere_a_user_writes_them(capsys, tmp_path: Path) -> None:
    cases = {
        "jobs.yaml": ["plan", "--inventory", "preset:tiny", "--jobs", "{f}"],
        "jobs.csv": ["plan", "--inventory", "preset:tiny", "--jobs", "{f}"],
        "trace.swf": ["simulate", "--inventory", "preset:tiny", "--trace", "{f}", "--policy", "first-fit"],
        "dump": ["topology", "import", "--from", "ibnetdiscover", "{f}"],
        "topology.conf": ["topology", "import", "--from", "slurm", "--topology-conf", "{f}", "--gpus-per-node", "8"],
        "serve.yaml": ["serve", "--inventory", "preset:tiny", "--config", "{f}"],
    }
    texts = {"jobs.yaml": f"- {{job_id: a, gpus: {BIG}}}\n", "jobs.csv": f"job_id,gpus\na,{BIG}\n",
             "trace.swf": f"1 0 0 {BIG} 8 -1 -1 8 -1 -1 1 1 1 -1 1 -1 -1 -1\n",
             "dump": f'Switch 8 "S-01" # "leaf"\n[{BIG}] "H-02"[1] # "n1 HCA-1" lid 1 4xNDR\n',
             "topology.conf": f"SwitchName=s1 Nodes=n[1-2] LinkSpeed={BIG}\n", "serve.yaml": f"refresh_s: {BIG}\n"}
    for name, args in cases.items():
        f = tmp_path / name
        f.write_text(texts[name])
        rc, _, err = run(capsys, *[a.replace("{f}", str(f)) for a in args])
        assert rc == 2, (name, err)


def test_non_finite_numbers_in_traces_end_at_once(capsys, tmp_path: Path) -> None:
    for row in ("1 nan 0 60 8 -1 -1 8 -1 -1 1 1 1 -1 1 -1 -1 -1", "1 0 0 inf 8 -1 -1 8 -1 -1 1 1 1 -1 1 -1 -1 -1",
                "1 1e999 0 60 8 -1 -1 8 -1 -1 1 1 1 -1 1 -1 -1 -1"):
        (tmp_path / "t.swf").write_text(row + "\n")
        rc, _, err = run(capsys, "simulate", "--inventory", "preset:tiny", "--trace", str(tmp_path / "t.swf"))
        assert rc == 2 and "is not a number" in err
    (tmp_path / "t.csv").write_text("job_id,submit_time,duration,gpus\na,0,inf,8\nb,nan,5,8\n")
    rc, _, err = run(capsys, "simulate", "--inventory", "preset:tiny", "--trace", str(tmp_path / "t.csv"))
    assert rc == 2 and err.count("must be a number") == 2


def test_simulate_writes_strict_json(capsys, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("job_id,submit_time,duration,gpus\na,0,60,1\n")  # no multi-node job: empty means
    rc, _, _ = run(capsys, "simulate", "--inventory", "preset:tiny", "--trace", str(tmp_path / "t.csv"),
                   "--policy", "first-fit", "--out", str(tmp_path / "o.json"))
    assert rc == 0
    json.loads((tmp_path / "o.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def test_memory_bombs_are_refused_before_they_go_off(capsys, tmp_path: Path) -> None:
    with pytest.raises(HostlistError, match="more than placer expands"):
        expand("n[0-9][0-9][0-9][0-9][0-9][0-9]x[0-9]" + ",m[0-9]" * 30)  # 249 bytes in the issue: 10^7 names
    with pytest.raises(HostlistError):
        expand(",".join(f"p{i}[0-99999]" for i in range(MAX_HOSTLIST_NAMES // 100_000 + 2)))
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefghi", "bcdefghij"))
    problems: list = []
    assert parse_yaml(bomb, problems) is None and "aliases are expanded" in problems[0].message
    f = tmp_path / "inv.yaml"
    f.write_text(inv("node_types: {b: {gpus: 3000000000, nvlink_islands: [[0, 1]]}}\n"))
    rc, _, err = run(capsys, "topology", "validate", str(f))
    assert rc == 2


@pytest.mark.parametrize("depth", [300, 100_000])
def test_deep_nesting_is_an_input_error(capsys, tmp_path: Path, depth: int) -> None:
    f = tmp_path / "deep.yaml"
    f.write_text("version: " + "[" * depth + "]" * depth + "\n")
    rc, _, err = run(capsys, "topology", "validate", str(f))
    assert rc == 2 and ("nest" in err)
    problems: list = []
    assert parse_json("[" * depth + "]" * depth, problems) is None or depth < 1000


def test_fixed_width_limits_of_the_fabric(capsys) -> None:
    with pytest.raises(InventoryError) as err:
        load_inventory_text(inv("nodes: [{names: n1, type: b}]\nswitches: [{name: s, nodes: n1}]\n")
                            .replace("{a: {gpus: 8}}", "{a: {gpus: 8}, b: {gpus: 40000}}"))
    assert "at most 64 per node" in err.value.render()
    chain = "".join(f"  - {{name: s{i}, parent: s{i + 1}}}\n" for i in range(1, 200)) + "  - {name: s200}\n"
    with pytest.raises(InventoryError) as err:
        load_inventory_text(inv("switches:\n  - {name: s0, parent: s1, nodes: 'n[1-2]'}\n" + chain))
    assert "201 tiers deep; placer reads at most 16" in err.value.render()


def test_ibnetdiscover_names_an_inventory_cannot_hold_are_errors(capsys, tmp_path: Path) -> None:
    dump = ('Switch 8 "S-01" # "leaf one" enhanced port 0 lid 1 lmc 0\n[1] "H-02"[1] # "gpu#1 HCA-1" lid 2 4xNDR\n'
            '\nCa 1 "H-02" # "gpu#1 HCA-1"\n[1](02) "S-01"[1] # lid 2 lmc 0 "leaf one" lid 1 4xNDR\n')
    (tmp_path / "dump").write_text(dump)
    rc, _, err = run(capsys, "topology", "import", "--from", "ibnetdiscover", str(tmp_path / "dump"),
                     "-o", str(tmp_path / "out.yaml"))
    assert rc == 2 and "space" in err and not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize("desc", ["   ", "", "\t", "MT4129 ConnectX-7 Mellanox Technologies"])
def test_odd_adapter_descriptions_are_unnamed_adapters(capsys, tmp_path: Path, desc: str) -> None:
    (tmp_path / "dump").write_text(
        'Switch 8 "S-01" # "MF0;leaf1:MQM9700/U1" enhanced port 0 lid 1 lmc 0\n[1] "H-02"[1] # "x" lid 2 4xNDR\n\n'
        f'Ca 1 "H-02" # "{desc}"\n[1](02) "S-01"[1] # lid 2 lmc 0 "leaf1" lid 1 4xNDR\n')
    rc, _, err = run(capsys, "topology", "import", "--from", "ibnetdiscover", str(tmp_path / "dump"))
    assert rc == 2 and "no compute adapter left" in err


def test_a_malformed_slurm_json_snapshot_exits_3(capsys, tmp_path: Path) -> None:
    (tmp_path / "sinfo.json").write_text((ROOT / "tests/data/slurm2205/sinfo.json").read_text())
    (tmp_path / "squeue.json").write_text('{"jobs":[{"job_id":1,"job_state":[]}]}')
    rc, _, err = run(capsys, "slurm", "snapshot", "--inventory", "preset:tiny", "--from-dir", str(tmp_path))
    assert rc == 3 and "jobs[0]" in err


@pytest.mark.parametrize("crlf", [False, True])
def test_a_byte_order_mark_and_crlf_are_accepted_everywhere(capsys, tmp_path: Path, crlf: bool) -> None:
    from topology.exporters import export

    tiny = generate(design_for("tiny"))

    def put(name: str, text: str) -> str:
        text = "\ufeff" + (text.replace("\n", "\r\n") if crlf else text)
        (tmp_path / name).write_bytes(text.encode())
        return str(tmp_path / name)

    inv_path = put("inv.yaml", TINY_INV)
    checks = [
        ["topology", "validate", inv_path],
        ["topology", "import", "--from", "ibnetdiscover", put("dump", export(tiny, "ibnetdiscover"))],
        ["topology", "import", "--from", "slurm", "--topology-conf", put("t.conf", export(tiny, "slurm-tree")),
         "--gpus-per-node", "8"],
        ["simulate", "--inventory", inv_path, "--policy", "first-fit",
         "--trace", put("t.csv", "job_id,submit_time,duration,gpus\na,0,60,8\n")],
        ["topology", "import", "--from", "nvl-domains", "--inventory", inv_path,
         put("c.csv", "node,clique_id\ngpu001,7\ngpu002,7\n")],
        ["plan", "--inventory", inv_path, "--jobs", put("jobs.yaml", "- {job_id: a, gpus: 8}\n")],
    ]
    for args in checks:
        rc, _, err = run(capsys, *args)
        assert rc == 0, (args, err)


@pytest.mark.parametrize("module", ["placer", "cli.main"])
def test_python_dash_m_runs_the_command(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "topology", "show", "--preset", "tiny"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "fabric tiny: 16 nodes" in done.stdout, done.stderr


def test_apply_watch_outlives_a_failed_pass_and_a_single_pass_does_not() -> None:
    from placer import PlannerConfig
    from plugins.apply import ApplyReport, apply_loop

    slurm = Flaky()
    slurm.broken = True
    stop = threading.Event()
    reports: list[ApplyReport] = []

    def report(r: ApplyReport) -> None:
        reports.append(r)
        if len(reports) == 2:
            slurm.broken = False
        if len(reports) == 3:
            stop.set()

    last = apply_loop(FABRIC, slurm, PlannerConfig(), 600, 0.01, stop, report)
    assert [bool(r.errors) for r in reports] == [True, True, False] and not last.errors
    assert "IndexError" in reports[0].errors[0]
    slurm.broken = True
    with pytest.raises(IndexError):  # --once: the error goes out, and main() makes it exit 1 (a bug) or 3
        apply_loop(FABRIC, slurm, PlannerConfig(), 600, None, stop, report)


def test_adapter_and_node_names_with_huge_or_odd_digit_runs_sort_without_int() -> None:
    from topology.hostlists import natural_key

    names = ["mlx5_10", "mlx5_2", "mlx5_" + "9" * 5000, "mlx5_\u00b2", "mlx5_02"]
    ordered = sorted(names, key=natural_key)
    assert ordered[:3] == ["mlx5_02", "mlx5_2", "mlx5_10"] and ordered[3].endswith("9")


def test_the_drain_watch_outlives_failures_and_backs_off() -> None:
    class Broken(FakeSlurm):
        def node_states(self) -> list:
            raise ValueError("sinfo printed nonsense")

    d = Daemon(FABRIC, Broken(), ServeConfig(node_poll_s=0.1))
    d.refresh()
    t = threading.Thread(target=d.node_poller, daemon=True)
    t.start()
    time.sleep(2.0)
    assert t.is_alive()
    errors = d.metrics.registry.get_sample_value("placer_node_poll_errors_total")
    # without back-off 20 polls in 2 s; doubling from 0.1 s: 0.2, 0.4, 0.8 ... about 4
    assert errors is not None and 2 <= errors <= 6
    d.stop.set()
    t.join(5)


def test_hostlists_past_python_hostlists_limit_round_trip() -> None:
    """131,072 names (the 1,048,576-GPU fabric) compress to one range and expand back (issue 19)."""
    from topology.hostlists import HostlistError, compress_ordered, expand

    names = [f"gpu{i:06d}" for i in range(1, 131_073)]
    text = compress_ordered(names)
    assert text == "gpu[000001-131072]" and expand(text) == names
    with pytest.raises(HostlistError, match="names over 262,144 nodes"):
        expand("gpu[000001-300000]")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_read_strictly_or_with_their_undecodable_bytes_counted(data: bytes) -> None:
    """read_input: any file is text or a problem naming where it is not UTF-8; with replace_undecodable (job
    traces) always text, and a warning counting the bytes replaced exactly when the strict read refused."""
    import tempfile

    from topology.inputs import read_input

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f"
        path.write_bytes(data)
        strict, problem = read_input(path)
        lenient, warning = read_input(path, replace_undecodable=True)
    assert (strict is None) == (problem is not None) and lenient is not None
    if strict is None:
        assert problem is not None and "not a UTF-8 text file" in problem.message
        assert warning is not None and warning.severity == "warning" and not warning.message.startswith("0 ")
    else:
        assert warning is None and lenient == strict
