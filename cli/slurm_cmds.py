"""`placer lab ...` and `placer slurm ...`: the real Slurm side."""
from __future__ import annotations

import json
from pathlib import Path

import click

from plugins.backend import to_cluster_state
from plugins.lab import DEFAULT_DIR, Lab, LabOptions
from plugins.pyslurm_backend import choose_backend
from plugins.slurm_cli import SlurmCliBackend, saved_outputs_runner
from plugins.snapshot import snapshot_document
from topology import BackendError
from topology.subset import first_nodes

from .files import load_fabric, write_output

SLURM_CONF = click.option("--slurm-conf", envvar="SLURM_CONF", type=click.Path(dir_okay=False),
                          help="slurm.conf for the Slurm commands (env SLURM_CONF).")
BACKEND = click.option("--backend", type=click.Choice(["auto", "slurm-cli", "pyslurm"]), default="auto",
                       show_default=True, help="How to talk to Slurm (auto: pyslurm when it imports).")


@click.group()
def lab() -> None:
    """A real Slurm 22.05 cluster on this machine (needs root and Debian's Slurm packages)."""


@lab.command("up")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@click.option("--nodes", type=int, help="Only the first N nodes (default: all; 128 start in ~1 s).")
@click.option("--dir", "base", type=click.Path(file_okay=False), default=str(DEFAULT_DIR), show_default=True)
@click.option("--no-hook", is_flag=True, help="Do not install job_submit.lua.")
@click.option("--socket", "socket_path", default="/run/placer/placer.sock", show_default=True,
              help="Where job_submit.lua finds `placer serve`.")
@click.option("--hook-budget-s", type=float, default=0.05, show_default=True)
def lab_up(inventory: str, nodes: int | None, base: str, no_hook: bool, socket_path: str, hook_budget_s: float) -> None:
    """Start munged (unless running), slurmctld and one slurmd per node, all on 127.0.0.1."""
    fabric, _ = load_fabric(inventory)
    if nodes is not None:
        fabric = first_nodes(fabric, nodes)
    opt = LabOptions(base=Path(base), hook=not no_hook, socket_path=Path(socket_path), hook_budget_s=hook_budget_s)
    state = Lab(opt).up(fabric)
    click.echo(f"lab up: {len(state['nodes'])} nodes, {len(state['processes'])} processes under {base}")
    click.echo(f"export SLURM_CONF={state['slurm_conf']}")


@lab.command("status")
@click.option("--dir", "base", type=click.Path(file_okay=False), default=str(DEFAULT_DIR), show_default=True)
def lab_status(base: str) -> None:
    """What runs, and Slurm's view of the nodes (exit 3 when the lab is not up)."""
    st = Lab(LabOptions(base=Path(base))).status()
    click.echo(json.dumps(st, indent=1))
    if not st["up"]:
        raise BackendError(f"the lab under {base} is not up (exit 3)")


@lab.command("down")
@click.option("--dir", "base", type=click.Path(file_okay=False), default=str(DEFAULT_DIR), show_default=True)
def lab_down(base: str) -> None:
    """Stop exactly what `lab up` started, by pid."""
    stopped = Lab(LabOptions(base=Path(base))).down()
    click.echo(f"stopped {len(stopped)} processes" if stopped else "no lab processes were running")


@click.group()
def slurm() -> None:
    """Read the live Slurm cluster."""


@slurm.command("snapshot")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@SLURM_CONF
@BACKEND
@click.option("--from-dir", "from_dir", type=click.Path(file_okay=False, exists=True),
              help="Read saved `sinfo --json` and `squeue --json` outputs (sinfo.json, squeue.json) from this "
                   "directory instead of asking Slurm.")
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
    write_output(output, json.dumps(snapshot_document(fabric, snap, report, be.name), indent=1) + "\n")
