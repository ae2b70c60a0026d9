"""One JobRequest per job, one translator per source: nothing the user gave is dropped on the way.

Fabric (tiny preset, rails off): 16 nodes gpu[001-016], 8 H100 GPUs each, leaves of 4.
"""
from __future__ import annotations

import json

import pytest

from placer import JobRequest, PlannerConfig, plan
from placer.jobs import split_constraint
from placer.plan_doc import plan_document, schema_problems, simulation_document
from placer.sim import simulate
from placer.tracegen import scale_to_load
from placer.traces import merge_traces, parse_csv_trace
from placer.validate import validate
from plugins.backend import SlurmJob, SlurmNode, SlurmSnapshot, StateReport, array_task_count, to_cluster_state
from plugins.requests import job_from_hook, job_from_slurm
from plugins.snapshot import snapshot_document
from topology import ClusterState
from topology.generate import design_for, generate

FABRIC = generate(design_for("tiny", rails=0))


def test_hook_request_keeps_every_constraint() -> None:
    job, why = job_from_hook({"v": 1, "name": "train", "tres_per_node": "gres:gpu:h100:8", "min_nodes": 2,
                              "features": "ib&nvme", "exc_nodes": "gpu[001-002]", "partition": "gpu",
                              "qos": "high", "time_limit": 90, "shared": 0})
    assert why == "" and job is not None
    assert (job.gpus, job.gpus_per_node, job.gpu_model, job.features) == (16, 8, "h100", ("ib", "nvme"))
    assert (job.exclude, job.partition, job.qos, job.time_limit_s, job.exclusive) == (
        ("gpu001", "gpu002"), "gpu", "high", 5400.0, True)
    assert job.not_yet_honoured() is None


@pytest.mark.parametrize("extra, carried", [({"req_nodes": "gpu003"}, "--nodelist gpu003"),
                                            ({"features": "[a|b]*2"}, "--constraint '[a|b]*2' (counts (`*N`))"),
                                            ({"features": "a|b&c"},
                                             "--constraint 'a|b&c' (& and | mixed without parentheses)")])
def test_constraints_not_honoured_yet_are_carried_and_named(extra: dict, carried: str) -> None:
    job, _ = job_from_hook({"v": 1, "name": "x", "tres_per_job": "gres:gpu:4", **extra})
    assert job is not None and job.not_yet_honoured() == carried
    p = plan(FABRIC, ClusterState(FABRIC), [job]).placements[0]
    assert p.status == "unplaceable" and "left to Slurm" in p.reason
    assert validate(FABRIC, ClusterState(FABRIC), [job], [p]) == []


def test_split_constraint() -> None:
    assert split_constraint("a&b,c") == (["a", "b", "c"], None)
    assert split_constraint("[rack1|rack2]&ib") == ([], "[rack1|rack2]&ib")


def test_squeue_job_keeps_partition_model_exclusions_and_priority() -> None:
    j = SlurmJob(job_id=7, name="x", state="PENDING", partition="gpu", priority=42, node_count=2, gpus_per_node=8,
                 submit_time=100, excluded_nodes=("gpu001",), features="ib", gpu_model="h100", qos="normal",
                 time_limit_s=600.0, required_nodes=("gpu002",))
    job = job_from_slurm(j, partition_nodes=("gpu001", "gpu002"))
    assert (job.job_id, job.gpus, job.gpus_per_node, job.priority, job.partition) == ("7", 16, 8, 42, "gpu")
    assert (job.exclude, job.features, job.gpu_model, job.qos, job.time_limit_s) == (
        ("gpu001",), ("ib",), "h100", "normal", 600.0)
    assert job.required_nodes == ("gpu002",) and job.partition_nodes == ("gpu001", "gpu002")


def test_partition_nodes_are_honoured() -> None:
    part = tuple(f"gpu{i:03d}" for i in range(9, 17))
    job = JobRequest("p", 16, gpus_per_node=8, partition="half", partition_nodes=part)
    p = plan(FABRIC, ClusterState(FABRIC), [job], PlannerConfig(explain=True)).placements[0]
    assert p.status == "placed" and set(p.nodes) <= set(part)
    assert p.explain is not None and p.explain["nodes_excluded"]["outside the job's partition"] == 8


def test_traces_keep_priority_and_every_field() -> None:
    t = parse_csv_trace("job_id,submit_time,duration,gpus,priority,features\na,0,10,8,5,ib\nb,4,10,16,7,\n", [])
    merged = merge_traces([("x", t), ("y", t)]).jobs
    assert [(j.job_id, j.priority) for j in merged] == [("x:a", 5), ("y:a", 5), ("x:b", 7), ("y:b", 7)]
    assert merged[0].features == ("ib",)
    scaled = scale_to_load(merged, FABRIC.total_gpus, 0.5)
    assert [j.priority for j in scaled] == [5, 5, 7, 7] and scaled[0].features == ("ib",)


def test_every_document_placer_writes_conforms_to_the_schema() -> None:
    jobs = [JobRequest("a", 16, gpus_per_node=8, tp=8, pp=2, dp=1), JobRequest("b", 3), JobRequest("c", 999)]
    result = plan(FABRIC, ClusterState(FABRIC), jobs, PlannerConfig(explain=True))
    doc = json.loads(json.dumps(plan_document(FABRIC, result.placements, result.summary())))
    assert schema_problems(doc) == []
    trace = [JobRequest("s", 8, submit_time=0.0, duration=5.0), JobRequest("t", 16, submit_time=1.0, duration=5.0)]
    recs, summ = simulate(FABRIC, trace, "first-fit")
    sim = json.loads(json.dumps(simulation_document(FABRIC, {"jobs": 2}, {"first-fit": recs}, {"first-fit": summ})))
    assert schema_problems(sim) == []
    snap = SlurmSnapshot((SlurmNode("gpu002", "drain", "fan"),),
                         (SlurmJob(1, "r", "RUNNING", nodes=("gpu001",), gpu_ids={"gpu001": (0, 1)}),))
    report: StateReport = to_cluster_state(FABRIC, snap)
    assert schema_problems(json.loads(json.dumps(snapshot_document(FABRIC, snap, report, "fake")))) == []
    # and the schema is not a formality: a wrong type and an unknown key are both named
    doc["placements"][0]["gpus"] = "many"
    doc["placements"][1]["colour"] = "red"
    assert [p.path for p in schema_problems(doc)] == ["placements[0].gpus", "placements[1]"]


def test_a_job_array_or_a_heterogeneous_component_is_left_to_slurm() -> None:
    """The hook sends job_desc.array_inx and het_job_offset (NO_VAL, sent as nothing, for other jobs): one
    node set advised to every task of an array would run its tasks one at a time."""
    base = {"v": 1, "name": "a", "min_nodes": 1, "tres_per_node": "gres/gpu:8"}
    assert job_from_hook(base)[0] is not None
    job, why = job_from_hook({**base, "array_inx": "0-3"})
    assert job is None and why.startswith("a job array is left to Slurm"), why
    for offset in (0, 1):
        job, why = job_from_hook({**base, "het_job_offset": offset})
        assert job is None and why.startswith("a heterogeneous job is left to Slurm"), why


@pytest.mark.parametrize(("tasks", "count"), [
    ("", 1), ("0-3", 4), ("7", 1), ("1,5-9:2", 4), ("0-99%8", 8), ("0-3%8", 4), ("0-15:4", 4), ("3-1", 1),
    ("x-y", 1), ("0-9:0", 1), ("1,3,5", 3)])
def test_array_task_count(tasks: str, count: int) -> None:
    assert array_task_count(tasks) == count


def test_a_jobs_own_switches_are_left_to_slurm() -> None:
    """`--switches=N` (the hook sends job_desc.req_switch; 0 or NO_VAL, sent as nothing, is none)."""
    base = {"v": 1, "name": "a", "min_nodes": 2, "tres_per_node": "gres/gpu:8"}
    assert job_from_hook({**base, "req_switch": 0})[0] is not None
    job, why = job_from_hook({**base, "req_switch": 1})
    assert job is None and why == "its own --switches=1 is left to Slurm"


def test_a_contiguous_job_is_left_to_slurm() -> None:
    base = {"v": 1, "name": "a", "min_nodes": 2, "tres_per_node": "gres/gpu:8"}
    assert job_from_hook({**base, "contiguous": 0})[0] is not None
    assert job_from_hook({**base, "contiguous": 1}) == (None, "--contiguous is left to Slurm")
