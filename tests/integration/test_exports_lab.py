"""Our exported topology files on each lab version's real slurmctld: `placer topology export` (the version
taken from the running controller) refuses what that Slurm cannot read, else writes a file Slurm's user
can read (0644) that slurmctld loads without complaint and then uses: a job that fits one leaf (tree)
or one block (block) lands there rather than on the lowest-named free nodes, never on drained ones."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.lab import Lab, LabOptions, slurm_env
from topology import dump_inventory
from topology.exporters import format_refused, parse_slurm_version
from topology.subset import first_nodes

from .conftest import LAB_PORTS, LabHandle, wait_until

pytestmark = pytest.mark.lab

KINDS = {"tree": ("slurm-tree", "topology.conf"), "block": ("slurm-block", "topology.conf"),
         "yaml": ("slurm-yaml", "topology.yaml")}
BLOCK = 8  # nodes per block: one leaf of the lab's fabric (its fabric has no NVLink domains)


@pytest.fixture
def small_lab(lab: LabHandle, request: pytest.FixtureRequest) -> Iterator[tuple[Lab, dict[str, str]]]:
    """A second, 16-node lab of the same Slurm version beside the session's, with the topology asked for."""
    kind = request.param
    fmt, name = KINDS[kind]
    if format_refused(fmt, parse_slurm_version(lab.version)):
        pytest.skip(f"Slurm {lab.version} cannot read {name} for topology/{kind} (the export refuses it)")
    ctld, slurmd = LAB_PORTS[lab.version]
    base = Path(f"{lab.base}-topo")
    small = Lab(LabOptions(base=base, slurm=lab.version, ctld_port=ctld + 50, slurmd_port=slurmd + 500,
                           hook=False, topology=kind, block_size=BLOCK))
    small.down()
    small.up(first_nodes(lab.fabric, 16))
    try:
        yield small, slurm_env(base)
    finally:
        small.down()


def _block_size(fmt: str) -> tuple[str, ...]:
    return () if fmt == "slurm-tree" else ("--block-size", str(BLOCK))


def _run(env: dict[str, str], *cmd: str) -> str:
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize("kind", list(KINDS))
def test_export_is_refused_or_readable_by_the_running_slurm(lab: LabHandle, kind: str, tmp_path: Path) -> None:
    fmt, _ = KINDS[kind]
    out = tmp_path / "topology.out"
    done = lab.placer("topology", "export", str(lab.inventory), "--format", fmt, *_block_size(fmt), "-o", str(out),
                      check=False)
    why = format_refused(fmt, parse_slurm_version(lab.version))
    if why:
        assert done.returncode == 2 and why in done.stderr, done.stderr
        assert not out.exists()
    else:
        assert done.returncode == 0, done.stderr
        assert out.stat().st_mode & 0o777 == 0o644  # slurmctld reads it as SlurmUser


@pytest.mark.parametrize("small_lab", list(KINDS), indirect=True, ids=list(KINDS))
def test_slurm_loads_the_export_and_confines_a_job_to_one_leaf(lab: LabHandle, small_lab, tmp_path: Path) -> None:
    small, env = small_lab
    kind = small.opt.topology
    fmt, name = KINDS[kind]
    fabric = first_nodes(lab.fabric, 16)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(dump_inventory(fabric))
    exported = tmp_path / name
    lab.placer("topology", "export", str(inv), "--format", fmt, *_block_size(fmt), "--slurm-version", lab.version,
               "-o", str(exported))
    loaded = small.opt.base / "etc" / name
    assert exported.read_text() == loaded.read_text()  # what slurmctld loaded is what the command writes
    log = (small.opt.base / "log" / "slurmctld.log").read_text(errors="replace")
    assert not [line for line in log.splitlines() if "topolog" in line.lower() and ("error" in line or "fatal" in line)]
    # leaf 1 (gpu001-008) loses two nodes: a 7-node job fits only leaf 2; name order would span both
    _run(env, "scontrol", "update", "NodeName=gpu[001-002]", "State=DRAIN", "Reason=export-test")
    job = _run(env, "sbatch", "--parsable", "-N", "7", "--exclusive", f"--output={small.opt.base}/log/j-%j.out",
               "--wrap", "sleep 60").strip().split(";")[0]

    def nodes() -> str | None:
        out = _run(env, "squeue", "-h", "-j", job, "-o", "%T %N").split()
        return out[1] if out and out[0] == "RUNNING" else None

    got = wait_until(f"job {job} to run on the {kind} lab", nodes, timeout_s=30)
    assert got == "gpu[009-015]", f"Slurm {lab.version} with topology/{kind} ran the 7-node job on {got}"
