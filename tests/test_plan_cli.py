"""`placer plan` as a user meets it: schema placer.plan/v1, --state, --down, text, explain, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main

from .conftest import ROOT

EXAMPLE = str(ROOT / "examples" / "inventory-example.yaml")
JOBS = str(ROOT / "examples" / "jobs-example.yaml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_schema_keys(capsys) -> None:
    code, out, err = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "placer.plan/v1"
    for p in doc["placements"]:
        assert {"job", "status", "gpus", "nodes", "gpu_ids", "leaves", "leaf_lower_bound", "cost", "reason"} <= set(p)
        assert p["status"] in ("placed", "pending", "unplaceable")
    by = {p["job"]: p for p in doc["placements"]}
    assert by["train-70b"]["status"] == "placed" and len(by["train-70b"]["nodes"]) == 4
    assert by["too-big"]["status"] == "unplaceable" and "only 7 nodes qualify" in by["too-big"]["reason"]
    assert doc["summary"]["placed"] == 5


def test_state_from_an_earlier_plan_occupies_gpus(capsys, tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    assert run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--format", "json", "-o", str(first))[0] == 0
    code, out, _ = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--state", str(first), "--format", "json")
    doc = json.loads(out)
    by = {p["job"]: p for p in doc["placements"]}
    assert by["train-70b"]["status"] == "pending"  # its nodes are taken by the first plan
    used_before = {(n, g) for p in json.loads(first.read_text())["placements"] for n, ids in p["gpu_ids"].items()
                   for g in ids}
    used_now = {(n, g) for p in doc["placements"] for n, ids in p["gpu_ids"].items() for g in ids}
    assert not used_before & used_now


def test_down_nodes_are_avoided(capsys) -> None:
    code, out, _ = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--down", "h100-[05-08]", "--format", "json")
    by = {p["job"]: p for p in json.loads(out)["placements"]}
    assert code == 0 and by["train-70b"]["status"] == "pending"
    assert not any(n.startswith("h100-0") and n >= "h100-05" for p in by.values() for n in p["nodes"])


def test_text_and_explain(capsys) -> None:
    code, out, _ = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--explain")
    assert code == 0
    assert out.splitlines()[0].split()[:4] == ["JOB", "STATUS", "GPUS", "NODES"]
    assert "notebook: needs 1 GPU(s) on one node; 12 of 20 nodes can take it now (excluded: down or drained 2, busy 6)" in out
    assert "considered: node" in out and "cost terms:" in out
    assert "5 of 6 jobs placed" in out


@pytest.mark.parametrize("args,fragment", [
    (["--down", "nope[1-2]"], "--down names nodes not in the fabric: nope[1-2]"),
    (["--down", "h100-[01"], "--down: malformed hostlist"),
])
def test_bad_down(capsys, args, fragment) -> None:
    code, _, err = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, *args)
    assert code == 2 and fragment in err and "Traceback" not in err


def test_bad_jobs_and_state_files(capsys, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("job_id,submit_time,duration,gpus\na,0,1,8\nb,0,1,many\n")
    code, out, err = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", str(jobs))
    assert code == 2 and out == "" and f"{jobs}:3: error:" in err and "expected a whole number, got 'many'" in err
    state = tmp_path / "state.json"
    state.write_text('{"schema": "placer.plan/v1", "placements": [{"job": "x", "status": "placed", '
                     '"gpu_ids": {"ghost": [0]}}, {"job": "y", "status": "placed", "gpu_ids": {"h100-01": [0, 9]}}]}')
    code, _, err = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--state", str(state))
    assert code == 2 and "node 'ghost' is not in fabric" in err and "h100-01 has no GPU 9" in err
    state.write_text("{not json")
    code, _, err = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--state", str(state))
    assert code == 2 and "not valid JSON" in err
    state.write_text('{"schema": "other"}')
    code, _, err = run(capsys, "plan", "--inventory", EXAMPLE, "--jobs", JOBS, "--state", str(state))
    assert code == 2 and "expected a placer.plan/v1 document" in err


def test_dump_models_writes_cpsat_models(capsys, tmp_path: Path) -> None:
    """tiny: 4 SUs of 4 nodes; with gpu001 down the free counts are 3,4,4,4. 10 nodes need 3 leaves and
    no exact fit exists in the greedy's first answer (4+4, then 3 of which 2 are used), so CP-SAT runs."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- {job_id: big, gpus: 80}\n")
    out_dir = tmp_path / "models"
    code, out, err = run(capsys, "plan", "--inventory", "preset:tiny", "--jobs", str(jobs), "--dump-models",
                         str(out_dir), "--down", "gpu001", "--format", "json")
    assert code == 0, err
    p = json.loads(out)["placements"][0]
    assert p["status"] == "placed" and p["leaves"] == 3 and p["leaf_lower_bound"] == 3
    assert "cp-sat" in p["solver"].lower(), p["solver"]
    assert (out_dir / "big.pbtxt").read_text().startswith("variables")
