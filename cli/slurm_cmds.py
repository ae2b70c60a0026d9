"""`placer lab ...` and `placer slurm ...`: the real Slurm side."""
from __future__ import annotations

from pathlib import Path

import click

from plugins.backend import to_cluster_state
from plugins.lab import TOPOLOGIES, Lab, LabOptions, default_dir
from plugins.lab_chroot import RELEASES
from plugins.pyslurm_backend import choose_backend
from plugins.slurm_cli import SlurmCliBackend, saved_outputs_runner
from plugins.snapshot import snapshot_document
from topology import BackendError
from topology.exporters import format_refused, parse_slurm_version
from topology.subset import first_nodes

from .files import json_text, load_fabric, write_output

SLURM_CONF = click.option("--slurm-conf", envvar="SLURM_CONF", type=click.Path(dir_okay=False),
                          help="slurm.conf for the Slurm commands (env SLURM_CONF).")
BACKEND = click.option("--backend", type=click.Choice(["auto", "slurm-cli", "pyslurm"]), default="auto",
                       show_default=True, help="How to talk to Slurm (auto: pyslurm when it imports).")


@click.group()
def lab() -> None:
    """A real Slurm cluster on this machine: 22.05 from Debian 12, 24.11 and 26.05 from chroots (needs root)."""


SLURM_VERSION = click.option("--slurm", "version", type=click.Choice(list(RELEASES)), default="22.05",
                             show_default=True, help="Slurm to run: the host's 22.05, or Debian trixie's 24.11 / "
                             "sid's 26.05 in a chroot (made once, about 90 s, under /var/lib/placer-chroot).")
LAB_DIR = click.option("--dir", "base", type=click.Path(file_okay=False),
                       help="The lab's directory [default: /var/lib/placer-lab, /var/lib/placer-lab-VERSION for "
                       "24.11 and 26.05].")


def _lab_dir(base: str | None, version: str) -> Path:
    return Path(base) if base else default_dir(version)


@lab.command("up")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@click.option("--nodes", type=int, help="Only the first N nodes (default: all; 128 start in ~1 s).")
@SLURM_VERSION
@LAB_DIR
@click.option("--topology", type=click.Choice(TOPOLOGIES), default="tree", show_default=True,
              help="The exported topology Slurm loads: topology.conf tree or block (23.11+), topology.yaml (25.05+).")
@click.option("--block-size", type=click.IntRange(min=1), help="Nodes per block (block, yaml) for fabrics "
              "without NVLink domains.")
@click.option("--no-hook", is_flag=True, help="Do not install job_submit.lua.")
@click.option("--socket", "socket_path", default="/run/placer/placer.sock", show_default=True,
              help="Where job_submit.lua finds `placer serve`.")
@click.option("--hook-budget-s", type=float, default=0.05, show_default=True)
def lab_up(inventory: str, nodes: int | None, version: str, base: str | None, topology: str,
           block_size: int | None, no_hook: bool, socket_path: str, hook_budget_s: float) -> None:
    """Start munged, slurmctld and one slurmd per node, all on 127.0.0.1 (the host's munged is reused)."""
    fabric, _ = load_fabric(inventory)
    if nodes is not None:
        fabric = first_nodes(fabric, nodes)
    refused = format_refused({"block": "slurm-block", "yaml": "slurm-yaml"}.get(topology, "slurm-tree"),
                             parse_slurm_version(version))
    if refused:
        raise click.UsageError(f"--topology {topology}: {refused}")
    lab_dir = _lab_dir(base, version)
    opt = LabOptions(base=lab_dir, slurm=version, topology=topology, block_size=block_size, hook=not no_hook,
                     socket_path=Path(socket_path), hook_budget_s=hook_budget_s)
    state = Lab(opt).up(fabric)
    click.echo(f"lab up: Slurm {version}, {len(state['nodes'])} nodes, {len(state['processes'])} processes "
               f"under {lab_dir}")
    click.echo(f"export SLURM_CONF={state['slurm_conf']}")
    if state.get("path"):
        click.echo(f"export PATH={lab_dir / 'bin'}:$PATH   # Slurm {version}'s own clients, from its chroot")


@lab.command("status")
@SLURM_VERSION
@LAB_DIR
def lab_status(version: str, base: str | None) -> None:
    """What runs, and Slurm's view of the nodes (exit 3 when the lab is not up)."""
    lab_dir = _lab_dir(base, version)
    st = Lab(LabOptions(base=lab_dir, slurm=version)).status()
    click.echo(json_text(st, indent=1))
    if not st["up"]:
        raise BackendError(f"the lab under {lab_dir} is not up (exit 3)")


@lab.command("down")
@SLURM_VERSION
@LAB_DIR
def lab_down(version: str, base: str | None) -> None:
    """Stop exactly what `lab up` started, by pid, and undo a chroot's mounts."""
    stopped = Lab(LabOptions(base=_lab_dir(base, version), slurm=version)).down()
    click.echo(f"stopped {len(stopped)} processes" if stopped else "no lab processes were running")


@click.group()
def slurm() -> None:
    """Read the live Slurm cluster."""


@slurm.command("snapshot")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@SLURM_CONF
@BACKEND
@click.option("--from-dir", "from_dir", type=click.Path(file_okay=False, exists=True),
              help="Read saved `sinfo --json`, `squeue --json` and `scontrol show reservation --oneliner` "
                   "outputs (sinfo.json, squeue.json, reservations.txt) from this directory instead of asking Slurm.")
@click.option("-o", "--output", help="Write here (default: stdout).")
def slurm_snapshot(inventory: str, slurm_conf: str | None, backend: str, from_dir: str | None,
                   output: str | None) -> None:
    """Running jobs and down nodes as placer.plan/v1 (usable as `placer plan --state`)."""
    fabric, _ = load_fabric(inventory)
    be = SlurmCliBackend(saved_outputs_runner(from_dir)) if from_dir else choose_backend(backend, slurm_conf)
    snap = be.snapshot()
    report = to_cluster_state(fabric, snap)
    for w in report.warnings:
        click.echo(f"placer: warning: {w}", err=True)
    write_output(output, json_text(snapshot_document(fabric, snap, report, be.name), indent=1) + "\n")
