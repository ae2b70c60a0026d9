"""sbatch --constraint: what placer honours (AND, OR, parenthesised OR inside AND, matching OR), what it
leaves to Slurm, and that the planner and the validator keep a matching-OR job on one alternative.

Fabric: two leaves of four 8-GPU nodes; features by node:
    l1: n1 a   n2 a   n3 b   n4 b
    l2: n5 a   n6 b   n7 b   n8 c
"""
from __future__ import annotations

import pytest

from placer import JobRequest, PlannerConfig, plan
from placer.constraints import parse_constraint
from placer.validate import validate
from topology import ClusterState, load_inventory_text

from .conftest import dedent

FABRIC, _ = load_inventory_text(dedent("""
    version: 1
    node_types:
      a: {gpus: 8, features: [a]}
      b: {gpus: 8, features: [b]}
      c: {gpus: 8, features: [c, x]}
    nodes:
      - {names: "n[1-2],n5", type: a}
      - {names: "n[3-4],n[6-7]", type: b}
      - {names: n8, type: c}
    switches:
      - {name: top}
      - {name: l1, parent: top, nodes: "n[1-4]"}
      - {name: l2, parent: top, nodes: "n[5-8]"}
    """))


@pytest.mark.parametrize("text,alts", [
    ("a|b", [[{"a", "b"}]]),
    ("a&x", [[{"a"}, {"x"}]]),
    ("x&(a|b)", [[{"x"}, {"a", "b"}]]),
    ("[a|b]", [[{"a"}], [{"b"}]]),
    ("[a&x|b]&y", [[{"y"}, {"a"}, {"x"}], [{"y"}, {"b"}]]),
    ("", [[]]),
])
def test_honoured_forms(text: str, alts: list) -> None:
    c, why = parse_constraint(text)
    assert why is None and c is not None
    assert [[set(cl) for cl in alt] for alt in c.alternatives] == alts


@pytest.mark.parametrize("text,why", [
    ("a*2", "counts"), ("a|b&c", "mixed without parentheses"), ("[a|b]&[c|d]", "several matching-OR"),
    ("[a|[b]]", "nested brackets"), ("x&((a|b))", "nested groups"), ("(a|b", "unbalanced"), ("a b", "cannot read"),
])
def test_left_to_slurm(text: str, why: str) -> None:
    c, reason = parse_constraint(text)
    assert c is None and reason is not None and why in reason
    unhonoured = JobRequest(job_id="j", gpus=8, constraint=text).not_yet_honoured()
    assert unhonoured is not None and why in unhonoured


def _nodes(constraint: str, gpus: int, state: ClusterState | None = None) -> list[str]:
    state = state or ClusterState(FABRIC)
    job = JobRequest(job_id="j", gpus=gpus, gpus_per_node=8 if gpus > 8 else None, constraint=constraint)
    res = plan(FABRIC, state, [job], PlannerConfig(solver="greedy"))
    assert validate(FABRIC, state, [job], res.placements) == []
    p = res.placements[0]
    return sorted(p.nodes) if p.status == "placed" else []


def test_or_lets_nodes_differ_and_matching_or_does_not() -> None:
    # 4 nodes: a|b fits in leaf 1 (two a, two b); [a|b] cannot: all-a has 3 nodes, all-b 4 over two leaves
    assert _nodes("a|b", 32) == ["n1", "n2", "n3", "n4"]
    assert _nodes("[a|b]", 32) == ["n3", "n4", "n6", "n7"]
    assert _nodes("[a|c]", 32) == []  # three a nodes and one c node: no alternative has four
    assert _nodes("x&(a|c)", 8) == ["n8"]


def test_the_validator_refuses_a_mixed_matching_or_placement() -> None:
    state = ClusterState(FABRIC)
    job = JobRequest(job_id="j", gpus=16, gpus_per_node=8, constraint="[a|b]")
    res = plan(FABRIC, state, [job], PlannerConfig(solver="greedy"))
    p = res.placements[0]
    p.nodes = ["n2", "n3"]  # an a node and a b node, both in leaf 1
    p.gpu_ids = {"n2": list(range(8)), "n3": list(range(8))}
    p.leaves = 1
    problems = validate(FABRIC, state, [job], [p], check_cost=False)
    assert any("do not all meet one alternative of --constraint '[a|b]'" in x for x in problems), problems
