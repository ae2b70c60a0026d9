"""The command line, fed broken files: every run ends with a documented exit code (0, 2 bad input, 3 backend),
never an internal error, and a failed run writes nothing."""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from hypothesis import given

from cli.main import main
from topology import dump_inventory

from .conftest import tried
from .mutate import mutated
from .test_fuzz_parsers import (
    CSV_JOBS,
    EXAMPLE_JOBS,
    IBNET,
    INVENTORIES,
    PLAN_DOC,
    SACCT,
    SLURM_FILES,
    SLURM_JSON,
    SNAPSHOT_DOC,
    SWF,
    TINY,
)

TINY_INV = dump_inventory(TINY)


def _run(args: list[str], files: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as d:
        for name, text in files.items():
            (Path(d) / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        argv = [a.replace("{d}", d) for a in args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
        assert rc in (0, 2, 3), (rc, err.getvalue()[-2000:])
        assert "Traceback" not in err.getvalue(), err.getvalue()[-2000:]
        if rc != 0:
            assert not (Path(d) / "out").exists(), "a failed run left output behind"
        return rc


@given(mutated(INVENTORIES))
def test_topology_validate_and_export(text: str) -> None:
    tried("cli: topology validate/export")
    _run(["topology", "validate", "{d}/inv.yaml"], {"inv.yaml": text})
    _run(["topology", "export", "{d}/inv.yaml", "--format", "slurm-tree", "-o", "{d}/out"], {"inv.yaml": text})


@given(mutated(IBNET))
def test_topology_diff(text: str) -> None:
    """Two nights' dumps, one of them broken: a diff or an input error, never a traceback."""
    tried("cli: topology diff")
    _run(["topology", "diff", "{d}/old", "{d}/new"], {"old": IBNET[0], "new": text})
    _run(["topology", "diff", "{d}/old", "{d}/new", "--format", "json"], {"old": text, "new": IBNET[0]})


@given(mutated(IBNET + SLURM_FILES))
def test_topology_import(text: str) -> None:
    tried("cli: topology import")
    _run(["topology", "import", "--from", "ibnetdiscover", "{d}/dump", "-o", "{d}/out"], {"dump": text})
    topo, _, conf = text.partition("\n#--\n")
    _run(["topology", "import", "--from", "slurm", "--topology-conf", "{d}/t.conf", "--slurm-conf", "{d}/s.conf",
          "--gpus-per-node", "8", "-o", "{d}/out"], {"t.conf": topo, "s.conf": conf})


@given(mutated([EXAMPLE_JOBS, PLAN_DOC]))
def test_plan(text: str) -> None:
    tried("cli: plan")
    _run(["plan", "--inventory", "{d}/inv.yaml", "--jobs", "{d}/jobs.yaml", "--solver", "greedy", "-o", "{d}/out"],
         {"inv.yaml": TINY_INV, "jobs.yaml": text})
    _run(["plan", "--inventory", "{d}/inv.yaml", "--jobs", "{d}/jobs.yaml", "--state", "{d}/state.json",
          "--solver", "greedy", "-o", "{d}/out"],
         {"inv.yaml": TINY_INV, "jobs.yaml": "- {job_id: x, gpus: 8}\n", "state.json": text})


@given(mutated([SNAPSHOT_DOC, PLAN_DOC]))
def test_admin_commands_offline(text: str) -> None:
    """status, why and reserve on a broken snapshot: an answer or an input error, never a traceback."""
    tried("cli: status, why, reserve")
    files = {"inv.yaml": TINY_INV, "jobs.yaml": "- {job_id: x, gpus: 24}\n", "state.json": text, "c.yaml": "{}\n"}
    _run(["status", "--inventory", "{d}/inv.yaml", "--state", "{d}/state.json", "--config", "{d}/c.yaml",
          "--format", "json"], files)
    _run(["why", "x", "--inventory", "{d}/inv.yaml", "--state", "{d}/state.json", "--jobs", "{d}/jobs.yaml",
          "--config", "{d}/c.yaml", "--now", "0"], files)
    _run(["reserve", "--gpus", "32", "--within", "su", "--inventory", "{d}/inv.yaml", "--state", "{d}/state.json",
          "--config", "{d}/c.yaml", "--now", "0"], files)


@given(mutated(["a&b", "a|b", "x&(a|b)", "[a|b]", "gpu[001-004]", "gpu", "h100", "a*2"]),
       mutated(["gpu[001-004]", "gpu001,gpu016", "n[1-3]", ""]))
def test_reserve_constraints(constraint: str, hosts: str) -> None:
    """reserve's --constraint, --exclude, --partition and --gpu-model, given any text: a plan on the nodes
    they allow or an input error, never a traceback."""
    tried("cli: reserve constraints")
    files = {"inv.yaml": TINY_INV, "state.json": SNAPSHOT_DOC, "c.yaml": "{}\n"}
    base = ["reserve", "--gpus", "16", "--inventory", "{d}/inv.yaml", "--state", "{d}/state.json", "--config",
            "{d}/c.yaml", "--now", "0"]
    _run([*base, "--constraint", constraint, "--exclude", hosts], files)
    _run([*base, "--partition", constraint, "--gpu-model", hosts], files)


@given(mutated([CSV_JOBS, SWF, SACCT]))
def test_simulate(text: str) -> None:
    tried("cli: simulate")
    _run(["simulate", "--inventory", "{d}/inv.yaml", "--trace", "{d}/trace", "--policy", "first-fit",
          "--limit", "20", "--out", "{d}/out"], {"inv.yaml": TINY_INV, "trace": text})


@given(mutated(SLURM_JSON))
def test_slurm_snapshot_from_saved_outputs(text: str) -> None:
    tried("cli: slurm snapshot")
    squeue = (_ROOT_DATA / "squeue.json").read_text()
    sinfo = (_ROOT_DATA / "sinfo.json").read_text()
    for files in ({"sinfo.json": text, "squeue.json": squeue}, {"sinfo.json": sinfo, "squeue.json": text}):
        _run(["slurm", "snapshot", "--inventory", "preset:tiny", "--from-dir", "{d}", "-o", "{d}/out"], files)


_ROOT_DATA = Path(__file__).resolve().parents[1] / "data" / "slurm2205"
