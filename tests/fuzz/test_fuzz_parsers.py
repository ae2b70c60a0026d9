"""Every parser, fed broken versions of real inputs: nothing escapes but the project's own input error,
and what is accepted loads back the same and passes the checks a valid input passes.

Budget: PLACER_FUZZ_EXAMPLES per target (1,000 in the default run, derandomized); `scripts/fuzz.sh 30` runs
the suite for 30 minutes on fresh random inputs (docs/testing.md).
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given

from placer import PlannerConfig, plan
from placer.constraints import parse_constraint
from placer.jobs import jobs_from_csv, jobs_from_list
from placer.plan_doc import apply_plan_document, plan_document
from placer.traces import parse_trace
from plugins.backend import HoldClock
from plugins.hold_clock_file import clock_text, load_clock, save_clock
from plugins.slurm_cli import (
    parse_node_states_text,
    parse_reservations_text,
    parse_sinfo_json,
    parse_squeue_json,
    text_node_state,
)
from plugins.snapshot import reservations_of
from topology import ClusterState, PlacerError, Problem, dump_inventory, load_inventory_text
from topology.exporters import export, parse_slurm_version
from topology.generate import design_for, generate
from topology.hostlists import HostlistError, compress_ordered, expand
from topology.ibnetdiscover import ImportOptions, import_ibnetdiscover, parse_node_map
from topology.inputs import parse_json, parse_yaml
from topology.locations import parse_locations_csv, with_locations
from topology.nvidia_smi import parse_clique_csv, parse_topo_matrix
from topology.slurm_conf import import_slurm, parse_gres_gpus

from ..conftest import SHARED
from ..helpers import placement_signature
from .conftest import tried
from .mutate import mutated

ROOT = Path(__file__).resolve().parents[2]
TINY = generate(design_for("tiny"))
EXAMPLE_INV = (ROOT / "examples/inventory-example.yaml").read_text()
EXAMPLE_JOBS = (ROOT / "examples/jobs-example.yaml").read_text()


def _own_errors_only(fn: Callable[[], Any]) -> Any:
    """Run `fn`; the project's input errors are an answer, anything else fails the test."""
    try:
        return fn()
    except PlacerError:
        return None


def _same_fabric(a: Any, b: Any) -> None:
    assert placement_signature(a) == placement_signature(b)
    assert list(a.node_names) == list(b.node_names)
    assert [int(x) for x in a.node_state] == [int(x) for x in b.node_state]
    assert [(x.a, x.b, x.link, x.usual) for x in a.degraded_links] == \
        [(x.a, x.b, x.link, x.usual) for x in b.degraded_links]


# -- inventories ---------------------------------------------------------------------------------------
# the last two: degraded links (issue 19) and two disjoint trees
INVENTORIES = [EXAMPLE_INV, dump_inventory(TINY), dump_inventory(generate(design_for("tiny", rails=0))),
               EXAMPLE_INV.replace("# degraded_links:\n#   - {a: h100-03", "degraded_links:\n  - {a: h100-03"),
               "version: 1\nname: f\nnode_types: {g8: {gpus: 8}}\ndefaults: {type: g8}\nswitches:\n"
               "  - {name: a, nodes: 'n[1-4]'}\n  - {name: b, nodes: 'n[5-6]'}\n"
               "locations:\n  n1: {rack: A01, u: 3, serial: S1, row: 2, asset: T9}\n"]


@given(mutated(INVENTORIES))
def test_inventory(text: str) -> None:
    tried("inventory")
    got = _own_errors_only(lambda: load_inventory_text(text))
    if got is not None:  # accepted: dumps and loads back the same fabric
        again, _ = load_inventory_text(dump_inventory(got[0]))
        _same_fabric(got[0], again)


# -- job files, traces -------------------------------------------------------------------------------------
CSV_JOBS = "job_id,submit_time,duration,gpus,gpus_per_node\na,0,60,16,8\nb,5.5,30,4,\nc,10,600,64,8\n"
SWF = ("; Version: 2.2\n; Note: toy\n"
       "1 0 10 3600 8 -1 -1 8 7200 -1 1 1 1 -1 1 -1 -1 -1\n"
       "2 60 0 1800 16 -1 -1 16 3600 -1 1 2 1 -1 1 -1 -1 -1\n")
SACCT = ("JobID|Submit|Start|End|ReqTRES|AllocTRES|NNodes|State\n"
         "101|2026-01-01T00:00:00|2026-01-01T00:01:00|2026-01-01T01:00:00|gres/gpu=16|gres/gpu=16|2|COMPLETED\n"
         "101.batch|2026-01-01T00:00:00|2026-01-01T00:01:00|2026-01-01T01:00:00||gres/gpu=8|1|COMPLETED\n"
         "102|2026-01-01T00:02:00|Unknown|Unknown|gres/gpu:h100=8||1|PENDING\n")


def _check_jobs(jobs: list[Any]) -> None:
    for j in jobs:
        assert j.gpus >= 1 and (j.gpus_per_node is None or j.gpus % j.gpus_per_node == 0)
        for t in (j.submit_time, j.duration, j.time_limit_s):
            assert t is None or (t == t and abs(t) < float("inf"))


@given(mutated([EXAMPLE_JOBS, json.dumps([{"job_id": "x", "gpus": 8, "features": ["a"]}])]))
def test_jobs_file(text: str) -> None:
    tried("jobs yaml")
    problems: list[Problem] = []
    doc = parse_yaml(text, problems)
    if not problems:
        jobs = jobs_from_list(doc, problems)
        if not problems:
            _check_jobs(jobs)


@given(mutated([CSV_JOBS, SWF, SACCT]))
def test_traces(text: str) -> None:
    tried("traces")
    for fmt in ("csv", "swf", "sacct"):
        problems: list[Problem] = []
        trace = parse_trace("trace", text, fmt, problems)
        if not problems:
            _check_jobs(trace.jobs)
    jobs_from_csv(text, [])


# -- plan documents (--state) -----------------------------------------------------------------------------
def _plan_doc() -> str:
    jobs = jobs_from_list([{"job_id": "a", "gpus": 16}, {"job_id": "b", "gpus": 3}, {"job_id": "c", "gpus": 8}], [])
    res = plan(TINY, ClusterState(TINY), jobs, PlannerConfig(solver="greedy"))
    return json.dumps(plan_document(TINY, res.placements, res.summary()), indent=1)


PLAN_DOC = _plan_doc()
SNAPSHOT_DOC = json.dumps({**json.loads(PLAN_DOC), "partitions": {"a": "gpu[001-008]", "b": "gpu[009-016]"},
                           "down_nodes": [{"node": "gpu016", "state": "drain", "reason": "fan"}],
                           "busy_nodes": [{"node": "gpu015", "reason": "hidden"}],
                           "reservations": [{"name": "r1", "nodes": "gpu[013-014]", "start": 0, "end": None}]},
                          indent=1)


@given(mutated([PLAN_DOC, SNAPSHOT_DOC]))
def test_plan_document(text: str) -> None:
    tried("plan document")
    problems: list[Problem] = []
    doc = parse_json(text, problems)
    if problems:
        return
    state = ClusterState(TINY)
    if _own_errors_only(lambda: apply_plan_document(TINY, state, doc)) is None:
        return
    # accepted: every GPU it lists is taken once, and every GPU of its busy nodes, no other
    listed = {(n, g) for p in doc["placements"] if p.get("status") == "placed"
              for n, gs in p["gpu_ids"].items() for g in gs}
    busy = {b["node"] for b in doc.get("busy_nodes") or []}
    listed |= {(n, g) for n in busy for g in range(int(TINY.node_gpus[TINY.node_index[n]]))}
    assert int(TINY.total_gpus - state.free_gpus.sum()) == len(listed)
    _own_errors_only(lambda: reservations_of(doc, "fuzz"))


# -- fabric dumps and Slurm's files ---------------------------------------------------------------------
IBNET = [(ROOT / "tests/data/ibnet/rails-director.out").read_text(), export(TINY, "ibnetdiscover"),
         (ROOT / "tests/data/ibnet/rails-director.ibdiagnet").read_text()]


@given(mutated(IBNET))
def test_ibnetdiscover(text: str) -> None:
    tried("ibnetdiscover")
    got = _own_errors_only(lambda: import_ibnetdiscover(text, ImportOptions()))
    if got is not None:  # what the importer accepts, its inventory loader accepts too
        again, _ = load_inventory_text(dump_inventory(got[0]))
        _same_fabric(got[0], again)


SLURM_FILES = [export(TINY, "slurm-tree") + "\n#--\n" + export(TINY, "slurm-nodes"),
               "SwitchName=s1 Nodes=n[1-4]\nSwitchName=s2 Nodes=n[5-8] LinkSpeed=100\nSwitchName=top Switches=s[1-2]"
               "\n#--\nNodeName=n[1-8] Gres=gpu:h100:8 Feature=a,b State=UNKNOWN\nPartitionName=p Nodes=ALL\n"]


@given(mutated(SLURM_FILES))
def test_slurm_conf(text: str) -> None:
    tried("topology.conf + slurm.conf")
    topo, _, conf = text.partition("\n#--\n")
    got = _own_errors_only(lambda: import_slurm(topo, conf or None, gpus_per_node=8))
    if got is not None:
        again, _ = load_inventory_text(dump_inventory(got[0]))
        _same_fabric(got[0], again)


TOPO_M = ("\tGPU0\tGPU1\tGPU2\tGPU3\tNIC0\tCPU Affinity\n"
          "GPU0\t X \tNV18\tNV18\tSYS\tPXB\t0-55\nGPU1\tNV18\t X \tNV18\tSYS\tSYS\t0-55\n"
          "GPU2\tNV18\tNV18\t X \tNV4\tSYS\t56-111\nGPU3\tSYS\tSYS\tNV4\t X \tSYS\t56-111\n")
CLIQUES = "node,clique_id\ngpu0001,7\ngpu0002,7\ngpu0003,8\n"
NODE_MAP = "# guid name\n0x0002c903000a0b0c gpu0001\nH-0002c903000a0b0d gpu0002\n"
LOCATIONS = "node,rack,u,serial,row,asset\ngpu001,A01,12,SN-1,3,T-1\ngpu002,A01,14,SN-2,3,\n"


@given(mutated([TOPO_M, CLIQUES, NODE_MAP, LOCATIONS]))
def test_small_text_formats(text: str) -> None:
    tried("topo -m, cliques, node map, locations")
    _own_errors_only(lambda: parse_topo_matrix(text))
    _own_errors_only(lambda: parse_clique_csv(text))
    _own_errors_only(lambda: parse_node_map(text, "map"))
    got = _own_errors_only(lambda: parse_locations_csv(text))
    if got is not None:  # what the CSV gives, the inventory keeps: onto TINY when its names are TINY's
        _own_errors_only(lambda: load_inventory_text(dump_inventory(with_locations(TINY, got, "l")[0])))


# -- Slurm's JSON and text ------------------------------------------------------------------------------
def _slurm_seeds() -> list[str]:
    seeds = [(ROOT / "tests/data/slurm2205" / f).read_text() for f in ("sinfo.json", "squeue.json")]
    # the real 24.11 / 26.05 documents when ../shared is beside the clone (never copied here)
    for p in sorted((SHARED / "slurm-json").glob("*/*.json"))[:6] if SHARED.exists() else []:
        if p.stat().st_size < 200_000:
            seeds.append(p.read_text())
    seeds += ['{"jobs":[{"job_id":1,"job_state":[]}]}', '{"sinfo":[{"node":{"state":[]},"nodes":{"nodes":[]}}]}']
    return seeds


SLURM_JSON = _slurm_seeds()


@given(mutated(SLURM_JSON))
def test_slurm_json(text: str) -> None:
    tried("sinfo/squeue json")
    _own_errors_only(lambda: parse_sinfo_json(text))
    _own_errors_only(lambda: parse_squeue_json(text))


@given(mutated(["gpu001|idle\ngpu002|drained\ngpu003|mixed*\ngpu004|down~\n", "gpu[001-002]|allocated\n"]))
def test_node_states_text(text: str) -> None:
    tried("sinfo text")
    _own_errors_only(lambda: parse_node_states_text(text))


RESERVATIONS = ("ReservationName=r1 StartTime=2026-12-07T17:59:13 EndTime=2026-12-07T18:59:13 Duration=01:00:00 "
                "Nodes=gpu[001-004] NodeCnt=4 CoreCnt=64 Features=(null) PartitionName=(null) Flags=SPEC_NODES "
                "TRES=cpu=64 Users=nobody Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE\n"
                "ReservationName=f1 StartTime=2026-12-07T19:59:13 EndTime=2027-12-07T19:59:13 Duration=365-00:00:00 "
                "Nodes=gpu[009-010] NodeCnt=2 Flags=MAINT,SPEC_NODES Users=root State=INACTIVE\n")


@given(mutated([RESERVATIONS, "No reservations in the system\n"]))
def test_reservations_text(text: str) -> None:
    """What is read has a name, nodes as Slurm would list them, and a start before its end."""
    tried("scontrol show reservation")
    got = _own_errors_only(lambda: parse_reservations_text(text))
    for r in got[0] if got is not None else []:
        assert r.name and r.start <= r.end and all(r.nodes)


# -- small grammars -------------------------------------------------------------------------------------
@given(mutated(["gpu[001-004],gb[01-02]", "n[1-3,7],m7", "a[01-02]-b[1-2]", "x"]))
def test_hostlists(text: str) -> None:
    tried("hostlist")
    try:
        names = expand(text)
    except HostlistError:
        return
    if names and len(set(names)) == len(names) and all(n and "," not in n and "[" not in n for n in names):
        assert expand(compress_ordered(names)) == names


@given(mutated(["a&b", "[a|b]", "a*2&b", "(a|b)&c", "gpu_h100", "slurm 24.11.5", "gpu:h100:8,nic:2",
                "gpu:4(S:0-1)", "idle+drain", "down*"]))
def test_small_grammars(text: str) -> None:
    tried("constraint, version, gres, node state word")
    parse_constraint(text)
    _own_errors_only(lambda: parse_slurm_version(text))
    try:
        parse_gres_gpus(text)
    except ValueError:  # documented: a GPU entry it cannot read (the importer reports it with the line)
        pass
    text_node_state(text)


# -- placer apply's state file ------------------------------------------------------------------------
@given(mutated([clock_text(HoldClock({5, 9}, {9: 1_796_000_000.5})), clock_text(HoldClock())]))
def test_apply_state_file(text: str) -> None:
    tried("apply state file")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "apply-state.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        got = _own_errors_only(lambda: load_clock(path))
        if got is not None:  # what is accepted is a consistent clock, and saves back the same
            assert set(got.eligible_at) <= got.waited
            save_clock(path, got)
            assert load_clock(path) == got
