"""The plan document `placer.plan/v1`: results as plain data, and an earlier plan as a starting state."""
from __future__ import annotations

from typing import Any

from topology import ClusterState, Fabric, Problem, RequestError

from .types import Placement

SCHEMA = "placer.plan/v1"


def plan_document(fabric: Fabric, placements: list[Placement], summary: dict[str, Any],
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": SCHEMA, "fabric": fabric.name,
                           "placements": [p.to_dict() for p in placements], "summary": summary}
    if extra:
        doc.update(extra)
    return doc


def apply_plan_document(fabric: Fabric, state: ClusterState, doc: Any, source: str = "plan") -> int:
    """Occupy the GPUs of every placed job of an earlier plan; returns how many jobs. Checks everything first."""
    problems: list[Problem] = []
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise RequestError(problems=[Problem("schema", f"expected a {SCHEMA} document, got {got!r}")], source=source)
    items = doc.get("placements")
    if not isinstance(items, list):
        raise RequestError(problems=[Problem("placements", "expected a list")], source=source)
    work = state.copy()
    owner: dict[tuple[int, int], str] = {}
    count = 0
    for i, p in enumerate(items):
        path = f"placements[{i}]"
        if not isinstance(p, dict):
            problems.append(Problem(path, "expected a mapping"))
            continue
        job = str(p.get("job", f"#{i}"))
        path = f"{path}({job})"
        if p.get("status") != "placed":
            continue
        ids = p.get("gpu_ids")
        if not isinstance(ids, dict) or not ids:
            problems.append(Problem(f"{path}.gpu_ids", "a placed job needs gpu_ids {node: [indices]}"))
            continue
        for node, gpus in ids.items():
            n = fabric.node_index.get(node)
            if n is None:
                problems.append(Problem(f"{path}.gpu_ids.{node}", f"node {node!r} is not in fabric {fabric.name!r}"))
                continue
            if not isinstance(gpus, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in gpus):
                problems.append(Problem(f"{path}.gpu_ids.{node}", f"expected GPU indices, got {gpus!r}"))
                continue
            for g in gpus:
                if not 0 <= g < int(fabric.node_gpus[n]):
                    problems.append(Problem(f"{path}.gpu_ids.{node}", f"{node} has no GPU {g}"))
                elif (n, g) in owner:
                    problems.append(Problem(f"{path}.gpu_ids.{node}", f"GPU {g} of {node} is also given to job "
                                                                      f"{owner[(n, g)]}"))
                elif not int(work.free_mask[n]) >> g & 1:
                    problems.append(Problem(f"{path}.gpu_ids.{node}", f"GPU {g} of {node} is not free"))
                else:
                    owner[(n, g)] = job
                    work.allocate(n, [g])
        count += 1
    downs = doc.get("down_nodes") or []
    if not isinstance(downs, list):
        problems.append(Problem("down_nodes", "expected a list of {node, state, reason}"))
        downs = []
    for i, d in enumerate(downs):
        name = d.get("node") if isinstance(d, dict) else None
        n = fabric.node_index.get(name) if isinstance(name, str) else None
        if n is None:
            problems.append(Problem(f"down_nodes[{i}]", f"node {name!r} is not in fabric {fabric.name!r}"))
        else:
            work.set_usable(n, False)
    if problems:
        raise RequestError(problems=problems, source=source)
    state.__dict__.update(work.__dict__)
    return count
