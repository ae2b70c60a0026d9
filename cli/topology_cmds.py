"""`placer topology ...`: validate, show, import, export, generate."""
from __future__ import annotations

import re
from pathlib import Path

import click
import yaml

from plugins.slurm_cli import run_command
from topology import BackendError, Fabric, InventoryError, Problem, RequestError, dump_inventory
from topology.diff import diff_wiring, looks_like_dump, render_diff, wiring_of_dump, wiring_of_fabric
from topology.exporters import EXPORTERS, SLURM_READS_FROM, export, format_refused, parse_slurm_version
from topology.generate import PRESET_HELP, PRESETS, design_for, generate
from topology.hostlists import HostlistError, expand
from topology.ibnetdiscover import ImportOptions, dump_format, import_ibnetdiscover, parse_dump, parse_node_map
from topology.locations import parse_locations_csv, with_locations
from topology.nvidia_smi import node_type_from_topo, parse_clique_csv, with_domains, with_node_type
from topology.problems import errors_in
from topology.slurm_conf import import_slurm
from topology.summary import render_summary, summarize

from .files import json_text, load_fabric, read_text, write_output
from .report import verbose, warn

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                      help="Output for people (text) or scripts (json).")


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
    warn(problems, inventory, strict)
    s = summarize(fabric)
    if fmt == "json":
        click.echo(json_text({"valid": True, "warnings": [p.as_data() for p in problems], "summary": s}, indent=1))
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
    warn(problems, inventory)
    s = summarize(fabric)
    click.echo(json_text({**s, "warnings": [p.as_data() for p in problems]}, indent=1) if fmt == "json"
               else render_summary(s))


@topology.command("import")
@click.option("--from", "source", type=click.Choice(["slurm", "ibnetdiscover", "ibdiagnet", "nvidia-smi-topo",
                                                         "nvl-domains", "locations"]), required=True,
              help="What the input is (ibnetdiscover also reads ibdiagnet's topology file, known by its header).")
@click.argument("file", required=False)
@click.option("--topology-conf", type=click.Path(dir_okay=False), help="slurm: topology.conf (tree).")
@click.option("--slurm-conf", type=click.Path(dir_okay=False), help="slurm: slurm.conf (NodeName, DownNodes).")
@click.option("--gpus-per-node", type=click.IntRange(min=1), help="GPUs per node when the input does not say "
              "(slurm without slurm.conf; ibnetdiscover, default 8).")
@click.option("--gpu-model", default="gpu", show_default=True, help="GPU model when the input does not say.")
@click.option("--add-root", metavar="NAME", help="slurm: join several top switches under a new root switch NAME.")
@click.option("--hosts", "hosts", metavar="HOSTLIST", help="ibnetdiscover: only these hosts are compute nodes.")
@click.option("--host-regex", metavar="RE", help="ibnetdiscover: only hosts matching RE are compute nodes.")
@click.option("--node-map", type=click.Path(dir_okay=False), help="ibnetdiscover: 'GUID NAME' lines naming "
              "adapters whose description is still the default.")
@click.option("--keep-unnamed", is_flag=True, help="ibnetdiscover: keep default-named adapters as nodes named "
              "by GUID (one adapter per host, as on older clusters).")
@click.option("--node-model", metavar="NAME", help="nvidia-smi-topo: the node type to describe.")
@click.option("--inventory", "base_inventory", help="nvidia-smi-topo / nvl-domains / locations: the inventory to "
              "update.")
@click.option("--locations", "locations_csv", type=click.Path(dir_okay=False), help="Any source: also add the "
              "physical locations of this CSV (node,rack,u,serial[,row,asset]).")
@click.option("--name", default=None, help="Fabric name (default: the input file name).")
@click.option("--strict", is_flag=True, help="Treat warnings (repairs) as errors.")
@click.option("-o", "--output", metavar="INV.yaml", help="Write the inventory here (default: stdout).")
def import_(source: str, file: str | None, topology_conf: str | None, slurm_conf: str | None,
            gpus_per_node: int | None, gpu_model: str, add_root: str | None, hosts: str | None,
            host_regex: str | None, node_map: str | None, keep_unnamed: bool, node_model: str | None,
            base_inventory: str | None, locations_csv: str | None, name: str | None, strict: bool,
            output: str | None) -> None:
    """Build (or update) an inventory from Slurm's files, an ibnetdiscover or ibdiagnet dump, an `nvidia-smi
    topo -m` matrix, a node,clique_id CSV or a node,rack,u,serial CSV. Every problem is reported with file
    and line; errors write nothing (exit 2), repairs are warnings.

    \b
    Examples:
      placer topology import --from slurm --topology-conf /etc/slurm/topology.conf \\
          --slurm-conf /etc/slurm/slurm.conf -o /etc/placer/inventory.yaml
      placer topology import --from ibnetdiscover fabric.dump --host-regex '^gpu' -o inv.yaml
    """
    if source == "slurm":
        if not topology_conf:
            raise click.UsageError("--from slurm needs --topology-conf (and usually --slurm-conf)")
        stext = read_text(slurm_conf) if slurm_conf else None
        fabric, problems = import_slurm(
            read_text(topology_conf), stext, topology_source=topology_conf, slurm_source=slurm_conf or "slurm.conf",
            gpus_per_node=gpus_per_node, gpu_model=gpu_model, add_root=add_root,
            name=name or topology_conf.rsplit("/", 1)[-1].removesuffix(".conf"))
        header = f"imported from {topology_conf}" + (f" and {slurm_conf}" if slurm_conf else "")
    elif source in ("ibnetdiscover", "ibdiagnet"):
        if not file:
            raise click.UsageError(f"--from {source} needs the dump file")
        opt = _ibnet_options(gpus_per_node, gpu_model, hosts, host_regex, node_map, keep_unnamed,
                             name or Path(file).stem)
        text = read_text(file)
        fabric, problems = import_ibnetdiscover(text, opt, file)
        header = f"imported from {dump_format(text)} topology {file}"
    elif source == "nvidia-smi-topo":
        if not file or not node_model:
            raise click.UsageError("--from nvidia-smi-topo needs the matrix file and --node-model NAME")
        if base_inventory is None:
            _print_node_type(file, node_model, gpu_model)
            return
        base, _ = load_fabric(base_inventory)
        old = next((t for t in base.node_types if t.name == node_model), None)
        t = node_type_from_topo(read_text(file), node_model, old.gpu_model if old else gpu_model,
                                old.features if old else (), source=file)
        fabric, problems = with_node_type(base, t, file, base_inventory)
        header = f"node type {node_model} from {file}"
    else:
        fabric, problems, header = _csv_onto_inventory(source, file, base_inventory)
    if locations_csv:  # any source: where each node is, for the technician
        fabric, more = with_locations(fabric, parse_locations_csv(read_text(locations_csv), locations_csv),
                                      locations_csv)
        problems, header = problems + more, f"{header}, locations from {locations_csv}"
    warn(problems, None, strict)
    write_output(output, dump_inventory(fabric, header=header))
    if output not in (None, "-"):
        click.echo(f"wrote {output}: {fabric.n_nodes:,} nodes, {fabric.total_gpus:,} GPUs, "
                   f"{fabric.n_leaves:,} leaves", err=True)


def _csv_onto_inventory(source: str, file: str | None, base_inventory: str | None
                        ) -> tuple[Fabric, list[Problem], str]:
    """--from nvl-domains / locations: a CSV added onto --inventory."""
    what = {"locations": ("the node,rack,u,serial CSV", "locations"),
            "nvl-domains": ("the node,clique_id CSV", "NVLink domains")}[source]
    if not file or not base_inventory:
        raise click.UsageError(f"--from {source} needs {what[0]} and --inventory INV")
    base, _ = load_fabric(base_inventory)
    text = read_text(file)
    if source == "locations":
        fabric, problems = with_locations(base, parse_locations_csv(text, file), file)
    else:
        fabric, problems = with_domains(base, parse_clique_csv(text, file), file)
    return fabric, problems, f"{base_inventory} with {what[1]} from {file}"


def _ibnet_options(gpus_per_node: int | None, gpu_model: str, hosts: str | None, host_regex: str | None,
                   node_map: str | None, keep_unnamed: bool, name: str) -> ImportOptions:
    if hosts and host_regex:
        raise click.UsageError("give --hosts or --host-regex, not both")
    try:
        host_set = set(expand(hosts)) if hosts else None
    except HostlistError as exc:
        raise RequestError(f"--hosts: {exc}") from None
    if host_regex:
        try:
            re.compile(host_regex)
        except re.error as exc:
            raise RequestError(f"--host-regex: {exc}") from None
    mapping = parse_node_map(read_text(node_map), node_map) if node_map else None
    return ImportOptions(gpus_per_node=gpus_per_node or 8, gpu_model=gpu_model, host_regex=host_regex,
                         hosts=host_set, node_map=mapping, keep_unnamed=keep_unnamed, name=name)


def _print_node_type(file: str, node_model: str, gpu_model: str) -> None:
    """nvidia-smi topo -m -> a node type, printed as YAML to paste into an inventory."""
    t = node_type_from_topo(read_text(file), node_model, gpu_model, source=file)
    doc = {"node_types": {t.name: {"gpus": t.gpus, "gpu_model": t.gpu_model,
                                   **({"nvlink_islands": [list(i) for i in t.nvlink_islands]}
                                      if t.nvlink_islands else {}),
                                   "nvlinks": [list(r) for r in t.nvlinks]}}}
    click.echo(f"# node type {node_model} from {file}; paste under node_types: of an inventory")
    click.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None).rstrip())


@topology.command("export")
@click.argument("inventory")
@click.option("--format", "fmt", type=click.Choice(list(EXPORTERS)), required=True, help="What to write.")
@click.option("--block-size", type=int, help="Nodes per block for slurm-block/slurm-yaml when there are no "
                                             "NVLink domains.")
@click.option("--slurm-version", metavar="X.Y", help="The Slurm that will read the file: formats it cannot read "
              "are refused (default: the running controller's, from `scontrol show config`, else the clients' own).")
@click.option("-o", "--output", metavar="FILE", help="Write here (default: stdout).")
def export_(inventory: str, fmt: str, block_size: int | None, slurm_version: str | None, output: str | None) -> None:
    """Translate INVENTORY (YAML or preset:NAME) into Slurm's files, Graphviz or JSON."""
    fabric, problems = load_fabric(inventory)
    warn(problems, inventory)
    if fmt in SLURM_READS_FROM:
        version = slurm_version or _running_slurm_version()
        if version is None:
            click.echo(f"placer: note: Slurm's version is unknown (no --slurm-version, no controller reached); "
                       f"{fmt} needs Slurm {'.'.join(map(str, SLURM_READS_FROM[fmt]))} or later", err=True)
        elif (why := format_refused(fmt, parse_slurm_version(version))) is not None:
            raise RequestError(why)
    write_output(output, export(fabric, fmt, block_size))


def _running_slurm_version() -> str | None:
    """The running controller's version (`scontrol show config` asks slurmctld), else the clients'."""
    for cmd in (["scontrol", "show", "config"], ["sinfo", "--version"]):
        try:
            out = run_command(cmd, timeout_s=5.0)
        except BackendError:
            continue
        m = re.search(r"^SLURM_VERSION\s*=\s*(\S+)", out, re.M) if cmd[0] == "scontrol" else None
        if m or cmd[0] == "sinfo":
            return m.group(1) if m else out.strip() or None
    return None


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



@topology.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--host-regex", metavar="RE", help="Dump against inventory: only hosts matching RE are compute nodes.")
@FORMAT
def diff_(old: str, new: str, host_regex: str | None, fmt: str) -> None:
    """What changed between OLD and NEW: two ibnetdiscover (or ibdiagnet) dumps, two inventories, or one of
    each. Cables lost and added, links degraded and restored, nodes moved to other leaves.

    Two dumps compare cable by cable (ends by GUID and port); otherwise at the inventory's level (each
    node's leaf per rail, each switch's parent, the inventory's degraded_links). Exit 0 either way; the
    JSON has every change (the text shows 20 per section, all with -v).

    \b
    Examples:
      placer topology diff fabric-monday.dump fabric-tuesday.dump
      placer topology diff /etc/placer/inventory.yaml tonight.dump --host-regex '^gpu'
    """
    texts = {path: read_text(path) if not path.startswith("preset:") else "" for path in (old, new)}
    dumps = {path: looks_like_dump(text) for path, text in texts.items()}
    if dumps[old] and dumps[new]:
        sides = []
        for path in (old, new):
            dump = parse_dump(texts[path])
            if errors_in(dump.problems):
                raise InventoryError(dump.problems, path)
            sides.append(wiring_of_dump(dump))
    else:
        sides = [wiring_of_fabric(_fabric_for_diff(path, texts[path], dumps[path], host_regex)) for path in (old, new)]
    d = diff_wiring(sides[0], sides[1])
    if fmt == "json":
        click.echo(json_text(d.as_data(), indent=1))
    else:
        click.echo(render_diff(d, None if verbose() else 20))


def _fabric_for_diff(path: str, text: str, is_dump: bool, host_regex: str | None) -> Fabric:
    if not is_dump:
        fabric, problems = load_fabric(path)
    else:
        fabric, problems = import_ibnetdiscover(text, ImportOptions(host_regex=host_regex, name=Path(path).stem), path)
    warn(problems, path)
    return fabric
