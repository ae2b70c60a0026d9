"""`placer topology ...`: validate, show, import, export, generate."""
from __future__ import annotations

import json

import click

from topology import InventoryError, Problem, dump_inventory
from topology.exporters import EXPORTERS, export
from topology.generate import PRESET_HELP, PRESETS, design_for, generate
from topology.slurm_conf import import_slurm
from topology.summary import render_summary, summarize

from .files import load_fabric, read_text, write_output

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                      help="Output for people (text) or scripts (json).")


def _warn(problems: list[Problem], source: str | None = None, strict: bool = False) -> None:
    """Print warnings to stderr; with --strict they are errors and stop the command."""
    warnings = [p for p in problems if p.severity == "warning"]
    if strict and warnings:
        raise InventoryError([Problem(p.path, p.message, "error", p.line) for p in warnings], source)
    for p in warnings:
        click.echo(p.render(source), err=True)


@click.group()
def topology() -> None:
    """Load, check, convert and generate fabric descriptions."""


@topology.command()
@click.argument("inventory")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@FORMAT
def validate(inventory: str, strict: bool, fmt: str) -> None:
    """Check INVENTORY (a YAML file) and report every problem at once.

    Exit 0 with a summary when valid; exit 2 with one line per problem (path and offending name) when not.
    """
    fabric, problems = load_fabric(inventory)
    _warn(problems, inventory, strict)
    s = summarize(fabric)
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "warnings": [p.render() for p in problems], "summary": s}, indent=1))
    else:
        click.echo(f"{inventory}: valid")
        click.echo(render_summary(s))


@topology.command()
@click.argument("inventory", required=False)
@click.option("--preset", type=click.Choice(list(PRESETS)), help="Show a built-in generated fabric instead.")
@FORMAT
def show(inventory: str | None, preset: str | None, fmt: str) -> None:
    """Tiers, switch and node counts, nodes per leaf, GPUs and scalable units of a fabric.

    INVENTORY is a YAML inventory or preset:NAME; or use --preset.
    """
    if (inventory is None) == (preset is None):
        raise click.UsageError("give an INVENTORY file or --preset NAME (one of them)")
    fabric, problems = load_fabric(inventory or f"preset:{preset}")
    _warn(problems, inventory)
    s = summarize(fabric)
    click.echo(json.dumps(s, indent=1) if fmt == "json" else render_summary(s))


@topology.command("import")
@click.option("--from", "source", type=click.Choice(["slurm"]), required=True,
              help="What the input is (ibnetdiscover dumps: not built yet, see issue 6).")
@click.option("--topology-conf", type=click.Path(dir_okay=False), required=True, help="Slurm topology.conf (tree).")
@click.option("--slurm-conf", type=click.Path(dir_okay=False), help="slurm.conf: NodeName lines (Gres=gpu:N), DownNodes.")
@click.option("--gpus-per-node", type=click.IntRange(min=1), help="GPUs per node when no slurm.conf is given.")
@click.option("--gpu-model", default="gpu", show_default=True, help="GPU model when no slurm.conf is given.")
@click.option("--add-root", metavar="NAME", help="Join several top switches under a new root switch NAME.")
@click.option("--name", default=None, help="Fabric name (default: the topology.conf file name).")
@click.option("--strict", is_flag=True, help="Treat warnings (repairs) as errors.")
@click.option("-o", "--output", metavar="INV.yaml", help="Write the inventory here (default: stdout).")
def import_(source: str, topology_conf: str, slurm_conf: str | None, gpus_per_node: int | None, gpu_model: str,
            add_root: str | None, name: str | None, strict: bool, output: str | None) -> None:
    """Build an inventory from Slurm's topology.conf and slurm.conf.

    Every problem is reported with file and line; errors write nothing (exit 2), repairs are warnings.
    """
    ttext = read_text(topology_conf)
    stext = read_text(slurm_conf) if slurm_conf else None
    fabric, problems = import_slurm(
        ttext, stext, topology_source=topology_conf, slurm_source=slurm_conf or "slurm.conf",
        gpus_per_node=gpus_per_node, gpu_model=gpu_model, add_root=add_root,
        name=name or topology_conf.rsplit("/", 1)[-1].removesuffix(".conf"))
    _warn(problems, None, strict)
    write_output(output, dump_inventory(fabric, header=f"imported from {topology_conf}"
                                                      + (f" and {slurm_conf}" if slurm_conf else "")))
    if output not in (None, "-"):
        click.echo(f"wrote {output}: {fabric.n_nodes:,} nodes, {fabric.total_gpus:,} GPUs, "
                   f"{fabric.n_leaves:,} leaves", err=True)


@topology.command("export")
@click.argument("inventory")
@click.option("--format", "fmt", type=click.Choice(list(EXPORTERS)), required=True, help="What to write.")
@click.option("--block-size", type=int, help="Nodes per block for slurm-block/slurm-yaml when there are no "
                                             "NVLink domains.")
@click.option("-o", "--output", metavar="FILE", help="Write here (default: stdout).")
def export_(inventory: str, fmt: str, block_size: int | None, output: str | None) -> None:
    """Translate INVENTORY (YAML or preset:NAME) into Slurm's files, Graphviz or JSON."""
    fabric, problems = load_fabric(inventory)
    _warn(problems, inventory)
    write_output(output, export(fabric, fmt, block_size))


@topology.command("generate")
@click.option("--preset", type=click.Choice(list(PRESETS)), help="; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()))
@click.option("--pods", type=int, help="Pods under the core (1 = no core tier).")
@click.option("--sus-per-pod", type=int, help="Scalable units per pod.")
@click.option("--nodes-per-su", type=int, help="Nodes per scalable unit.")
@click.option("--gpus-per-node", type=int, help="GPUs per node.")
@click.option("--rails", type=int, help="Rails (one leaf per rail per SU); 0 = one leaf per SU.")
@click.option("--gpu-model", help="GPU model name (gres Type).")
@click.option("--node-prefix", help="Node name prefix.")
@click.option("--nvl-domain-nodes", type=int, help="Nodes per multi-node NVLink domain (0 = none).")
@click.option("--name", help="Fabric name.")
@click.option("-o", "--output", metavar="INV.yaml", help="Write the inventory here (default: stdout).")
def generate_(preset: str | None, output: str | None, **sizes: int | str | None) -> None:
    """Generate a synthetic fabric like the published reference designs (8-GPU nodes, 32-node SUs,
    16 SUs per pod, pods under a core). Start from --preset and override any size."""
    design = design_for(preset, **sizes)
    fabric = generate(design)
    write_output(output, dump_inventory(fabric, header=f"generated: {design}"))
    if output not in (None, "-"):
        click.echo(f"wrote {output}: {fabric.n_nodes:,} nodes, {fabric.total_gpus:,} GPUs", err=True)

