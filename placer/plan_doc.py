"""The plan document `placer.plan/v1`, owned here: its rows, its documents, reading one back, and its
JSON Schema (placer/plan_v1.schema.json, shipped in the package; the reader and the tests use it).

Every producer writes its rows through `plan_row`: planned jobs (`placement_row`), replayed jobs
(`simulation_row`) and Slurm's running jobs (plugins/snapshot.py). `apply_plan_document` reads any of
them back as a starting state (`placer plan --state`).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np

from topology import ClusterState, Fabric, Problem, RequestError

from .types import Placement

if TYPE_CHECKING:  # the simulator imports the planner, not the other way round
    from .sim.records import JobRecord

SCHEMA = "placer.plan/v1"
SCHEMA_FILE = Path(__file__).with_name("plan_v1.schema.json")


# -- rows -----------------------------------------------------------------------------------------------
def plan_row(*, job: str, status: str, gpus: int, nodes: list[str], gpu_ids: dict[str, list[int]], leaves: int,
             leaf_lower_bound: int | None, pods: int | None, pod_lower_bound: int | None, cost: int | None,
             reason: str, **optional: Any) -> dict[str, Any]:
    """One job of a plan document: the fields every row has, in this order, then the optional ones given
    (cost_terms, solver, priority, explain, ranks, times of a replay; see the schema)."""
    row: dict[str, Any] = {"job": job, "status": status, "gpus": gpus, "nodes": nodes, "gpu_ids": gpu_ids,
                           "leaves": leaves, "leaf_lower_bound": leaf_lower_bound, "pods": pods,
                           "pod_lower_bound": pod_lower_bound, "cost": cost}
    if "cost_terms" in optional:
        row["cost_terms"] = optional.pop("cost_terms")
    row["reason"] = reason
    row.update(optional)
    return row


def placement_row(p: Placement) -> dict[str, Any]:
    """A planned job (placer plan, placer apply)."""
    extra: dict[str, Any] = {}
    if p.explain is not None:
        extra["explain"] = p.explain
    if p.ranks is not None:
        extra.update(ranks=p.ranks, rank_traffic=p.rank_traffic, name_order_traffic=p.name_order_traffic)
    return plan_row(job=p.job, status=p.status, gpus=p.gpus, nodes=p.nodes, gpu_ids=p.gpu_ids, leaves=p.leaves,
                    leaf_lower_bound=p.leaf_lower_bound, pods=p.pods, pod_lower_bound=p.pod_lower_bound,
                    cost=p.cost, cost_terms=p.cost_terms, reason=p.reason, solver=p.solver, priority=p.priority,
                    **extra)


def simulation_row(fabric: Fabric, r: JobRecord) -> dict[str, Any]:
    """A replayed job (placer simulate): where and when it ran."""
    return plan_row(job=r.job.job_id, status=r.status, gpus=r.job.gpus,
                    nodes=[fabric.node_names[n] for n, _ in r.alloc],
                    gpu_ids={fabric.node_names[n]: ids for n, ids in r.alloc}, leaves=r.leaves,
                    leaf_lower_bound=r.leaf_bound, pods=r.pods, pod_lower_bound=r.pod_bound, cost=None,
                    reason=r.reason or ("" if r.status == "placed" else "did not start before the trace ended"),
                    priority=r.job.priority, leaf_bound_at_start=r.leaf_bound_now, start=r.start, end=r.end,
                    submit=r.job.submit_time, wait=r.wait_s)


# -- documents --------------------------------------------------------------------------------------------
def document(fabric: Fabric, rows: list[dict[str, Any]], summary: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A plan document: schema, fabric, rows, summary, then what the producer adds (kind, runs, source...)."""
    doc: dict[str, Any] = {"schema": SCHEMA, "fabric": fabric.name}
    doc.update({k: v for k, v in extra.items() if k in ("kind", "source", "trace")})
    doc["placements"] = rows
    doc.update({k: v for k, v in extra.items() if k not in ("kind", "source", "trace")})
    doc["summary"] = summary
    return doc


def plan_document(fabric: Fabric, placements: list[Placement], summary: dict[str, Any]) -> dict[str, Any]:
    return document(fabric, [placement_row(p) for p in placements], summary)


def simulation_document(fabric: Fabric, trace: dict[str, Any], runs: dict[str, list[JobRecord]],
                        summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One replay under several policies: the first policy's rows as the placements, every run beside."""
    first = next(iter(runs))
    return document(fabric, [simulation_row(fabric, r) for r in runs[first]], summaries, kind="simulation",
                    trace=trace, runs=[{"policy": n, "placements": [simulation_row(fabric, r) for r in recs],
                                        "summary": summaries[n]} for n, recs in runs.items()])


# -- the schema -------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def schema_problems(doc: Any) -> list[Problem]:
    """Every way `doc` breaks the JSON Schema, each with its path (empty: it conforms)."""
    validator = jsonschema.Draft202012Validator(json_schema())
    out = []
    for e in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".")
        out.append(Problem(path, e.message))
    return out


# -- reading a plan back ------------------------------------------------------------------------------------
def apply_plan_document(fabric: Fabric, state: ClusterState, doc: Any, source: str = "plan") -> int:
    """Occupy the GPUs of every placed job of an earlier plan, and every GPU of a snapshot's busy nodes; down
    nodes unusable. Returns how many jobs. Checks everything first."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise RequestError(problems=[Problem("schema", f"expected a {SCHEMA} document, got {got!r}")], source=source)
    problems = schema_problems(doc)
    if problems:
        raise RequestError(problems=problems, source=source)
    work = state.copy()
    owner: dict[tuple[int, int], str] = {}
    count = 0
    for i, p in enumerate(doc["placements"]):
        if p.get("status") != "placed":
            continue
        path = f"placements[{i}]({p['job']})"
        if not p["gpu_ids"]:
            problems.append(Problem(f"{path}.gpu_ids", "a placed job needs gpu_ids {node: [indices]}"))
            continue
        for node, gpus in p["gpu_ids"].items():
            _occupy(fabric, work, owner, f"{path}.gpu_ids.{node}", str(p["job"]), node, gpus, problems)
        count += 1
    for i, d in enumerate(doc.get("down_nodes") or []):
        n = fabric.node_index.get(d["node"])
        if n is None:
            problems.append(Problem(f"down_nodes[{i}]", f"node {d['node']!r} is not in fabric {fabric.name!r}"))
        else:
            work.set_usable(n, False)
    busy: set[int] = set()
    for i, d in enumerate(doc.get("busy_nodes") or []):  # Slurm's, with no job placer saw: taken whole
        n = fabric.node_index.get(d["node"])
        if n is None:
            problems.append(Problem(f"busy_nodes[{i}]", f"node {d['node']!r} is not in fabric {fabric.name!r}"))
        else:
            busy.add(n)
    idx = np.fromiter(sorted(busy), dtype=np.int64, count=len(busy))
    idx = idx[work.free_mask[idx] != 0]
    work.allocate_masks(idx, work.free_mask[idx].astype(np.uint64))  # one call: thousands at 27,648 nodes
    if problems:
        raise RequestError(problems=problems, source=source)
    state.__dict__.update(work.__dict__)
    return count


def _occupy(fabric: Fabric, work: ClusterState, owner: dict[tuple[int, int], str], path: str, job: str, node: str,
            gpus: list[int], problems: list[Problem]) -> None:
    n = fabric.node_index.get(node)
    if n is None:
        problems.append(Problem(path, f"node {node!r} is not in fabric {fabric.name!r}"))
        return
    for g in gpus:
        if not 0 <= g < int(fabric.node_gpus[n]):
            problems.append(Problem(path, f"{node} has no GPU {g}"))
        elif (n, g) in owner:
            problems.append(Problem(path, f"GPU {g} of {node} is also given to job {owner[(n, g)]}"))
        elif not int(work.free_mask[n]) >> g & 1:
            problems.append(Problem(path, f"GPU {g} of {node} is not free"))
        else:
            owner[(n, g)] = job
            work.allocate(n, [g])
