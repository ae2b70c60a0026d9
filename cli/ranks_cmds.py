"""`placer ranks` and `placer replace`: rank orders for 3D-parallel jobs, and failed-node replacement."""
from __future__ import annotations

import click

from placer.ranks import Parallelism, name_order_layout, placer_layout, rank_table, traffic
from placer.ranks import hostfile as rank_hostfile
from plugins.pyslurm_backend import choose_backend
from plugins.replace_flow import (
    JobView,
    apply_replacement,
    job_in_plan,
    job_in_slurm,
    job_pending_again,
    replace_nodes,
)
from topology import Fabric, RequestError
from topology.hostlists import HostlistError, compress, expand

from .files import json_text, load_fabric, read_document, write_output
from .slurm_cmds import BACKEND, SLURM_CONF

PAR = [click.option("--tp", type=click.IntRange(min=1), help="Tensor-parallel size."),
       click.option("--pp", type=click.IntRange(min=1), help="Pipeline-parallel size."),
       click.option("--dp", type=click.IntRange(min=1), help="Data-parallel size (tp x pp x dp = the job's GPUs)."),
       click.option("--weights", default="tp=1,pp=1,dp=1", show_default=True,
                    help="Traffic per edge of each group kind, e.g. tp=4,pp=1,dp=2.")]


def _with(opts):
    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return deco


def _parallelism(tp, pp, dp, weights: str, gpus: int) -> Parallelism:
    try:
        w = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in weights.split(",") if p.strip())}
    except ValueError:
        raise RequestError(f"--weights: expected tp=W,pp=W,dp=W, got {weights!r}") from None
    if set(w) - {"tp", "pp", "dp"}:
        raise RequestError(f"--weights: unknown group {sorted(set(w) - {'tp', 'pp', 'dp'})}")
    if tp is None and pp is None and dp is None:
        raise RequestError("give --tp, --pp and --dp (their product is the job's GPU count)")
    par = Parallelism(tp or 1, pp or 1, dp or 1, w.get("tp", 1.0), w.get("pp", 1.0), w.get("dp", 1.0))
    if par.size != gpus:
        raise RequestError(f"tp x pp x dp = {par.size}, but the job has {gpus} GPUs")
    return par


def _job(fabric: Fabric, plan_path: str | None, job: str, slurm_conf: str | None, backend: str,
         nodes_opt: str | None = None, live_apply: bool = False) -> JobView:
    if plan_path:
        return job_in_plan(fabric, read_document(plan_path, "json"), job, plan_path)
    be = choose_backend(backend, slurm_conf)
    return job_pending_again(fabric, be, job, nodes_opt) if live_apply else job_in_slurm(fabric, be, job, nodes_opt)


def _render_layout(fabric: Fabric, layout, par: Parallelism) -> list[str]:
    rows = rank_table(fabric, layout, par)
    out, start = [], 0
    for k in range(1, len(rows) + 1):
        if k == len(rows) or rows[k]["node"] != rows[start]["node"]:
            a, b = rows[start], rows[k - 1]
            rng = f"{a['rank']}" if a is b else f"{a['rank']}-{b['rank']}"
            out.append(f"  {a['node']:<14} {a['leaf']:<16} ranks {rng:<12} pp {a['pp']}-{b['pp']}  "
                       f"dp {a['dp']}-{b['dp']}")
            start = k
    return out


def _traffic_lines(ours: dict, name: dict) -> list[str]:
    ratio = f"{ours['cross_leaf'] / name['cross_leaf']:.2f}" if name["cross_leaf"] else "-"
    return ["traffic per step        placer order   name order (Slurm default)",
            f"  over NVLink / node    {ours['nvlink']:>12,.0f}   {name['nvlink']:>12,.0f}",
            f"  crossing leaves       {ours['cross_leaf']:>12,.0f}   {name['cross_leaf']:>12,.0f}   (ratio {ratio})",
            f"  crossing pods         {ours['cross_pod']:>12,.0f}   {name['cross_pod']:>12,.0f}"]


@click.command("ranks")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@click.option("--job", required=True, help="The job (its id in the plan, or Slurm's job id).")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="Read the job from this plan "
              "(default: from the live Slurm).")
@_with(PAR)
@click.option("--hostfile", type=click.Path(dir_okay=False), help="Write the hostfile (SLURM_HOSTFILE) here.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@SLURM_CONF
@BACKEND
def ranks_cmd(inventory, job, plan_path, tp, pp, dp, weights, hostfile, fmt, slurm_conf, backend) -> None:
    """The rank order of a tp x pp x dp job and its traffic, next to Slurm's default order (by node name)."""
    fabric, _ = load_fabric(inventory)
    gpu_ids = _job(fabric, plan_path, job, slurm_conf, backend).gpu_ids
    par = _parallelism(tp, pp, dp, weights, sum(len(v) for v in gpu_ids.values()))
    ours = placer_layout(fabric, gpu_ids, par)
    name = name_order_layout(fabric, gpu_ids, par)
    t_ours, t_name = traffic(fabric, ours, par), traffic(fabric, name, par)
    if hostfile:
        write_output(hostfile, rank_hostfile(fabric, ours))
    if fmt == "json":
        click.echo(json_text({"job": job, "tp": par.tp, "pp": par.pp, "dp": par.dp,
                               "ranks": rank_table(fabric, ours, par), "traffic": t_ours,
                               "name_order_traffic": t_name}, indent=1))
        return
    click.echo(f"job {job}: {par.size} ranks (tp {par.tp} x pp {par.pp} x dp {par.dp}) on {len(gpu_ids)} nodes; "
               f"rank = tp + {par.tp}*(dp + {par.dp}*pp)")
    click.echo("\n".join(_render_layout(fabric, ours, par)))
    click.echo("\n".join(_traffic_lines(t_ours, t_name)))


@click.command("replace")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@click.option("--job", required=True, help="The job (its id in the plan, or Slurm's job id).")
@click.option("--failed", required=True, metavar="HOSTLIST", help="The job's failed node(s).")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="Read the job and the cluster from "
              "this plan (default: the live Slurm).")
@click.option("--nodes", "nodes_opt", metavar="HOSTLIST", help="The job's nodes before it failed, when Slurm no "
              "longer shows them (a requeued job without a node list).")
@click.option("--spares-per-su", type=click.IntRange(min=0), default=0, show_default=True,
              help="Hot spares per scalable unit (the last nodes of each unit), preferred as replacements.")
@_with(PAR)
@click.option("--apply", "do_apply", is_flag=True, help="Pin the job to its new nodes in Slurm (ReqNodeList, "
              "NumNodes) and release it if held.")
@click.option("--keep-begin-time", is_flag=True, help="With --apply: keep Slurm's begin-time delay of a requeued "
              "job (about two minutes) instead of starting it as soon as its nodes are free.")
@click.option("--hostfile", type=click.Path(dir_okay=False), help="Write the new hostfile here.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@SLURM_CONF
@BACKEND
def replace_cmd(inventory, job, failed, plan_path, nodes_opt, spares_per_su, tp, pp, dp, weights, do_apply,
                keep_begin_time, hostfile, fmt, slurm_conf, backend) -> None:
    """Choose replacements for a job's failed nodes (same leaf first, then same pod; spares first)."""
    fabric, _ = load_fabric(inventory)
    try:
        failed_nodes = expand(failed)
    except HostlistError as exc:
        raise RequestError(f"--failed: {exc}") from None
    if plan_path and do_apply:
        raise click.UsageError("--apply works on the live Slurm, not on a plan")
    view = _job(fabric, plan_path, job, slurm_conf, backend, nodes_opt, live_apply=do_apply)
    par = None
    if any(v is not None for v in (tp, pp, dp)):
        par = _parallelism(tp, pp, dp, weights, sum(len(v) for v in view.gpu_ids.values()))
    res = replace_nodes(fabric, view, failed_nodes, spares_per_su, par)
    lines = [f"job {job}: {len(failed_nodes)} failed node(s) of {len(view.nodes)}"]
    # the technician pulls the failed node and checks the new one: where each is, when the inventory says
    lines += [f"  {r.failed}{fabric.where(r.failed)} -> {r.node or '(none)'}{fabric.where(r.node) if r.node else ''}: "
              f"{r.why}" for r in res.plan.replacements]
    located = {n: loc.as_data() for r in res.plan.replacements for n in (r.failed, r.node)
               if n and (loc := fabric.locations.get(n)) is not None}
    if res.unchecked:
        lines.append(f"  the job's constraints were not checked: {res.unchecked}")
    result: dict = {"job": job, "replacements": [r.__dict__ for r in res.plan.replacements], "nodes": res.plan.nodes,
                    "constraints_checked": not res.unchecked,
                    **({"constraints_unchecked": res.unchecked} if res.unchecked else {}),
                    **({"locations": located} if located else {})}
    if par is not None and res.traffic_before is not None and res.traffic_after is not None:
        tb, ta = res.traffic_before, res.traffic_after
        lines.append(f"  traffic crossing leaves per step: {tb['cross_leaf']:,.0f} before, {ta['cross_leaf']:,.0f} "
                     f"after (pods: {tb['cross_pod']:,.0f} -> {ta['cross_pod']:,.0f})")
        result.update(ranks=rank_table(fabric, res.layout_after or [], par), traffic_before=tb, traffic_after=ta)
    if hostfile:
        write_output(hostfile, rank_hostfile(fabric, res.layout_after) if res.layout_after is not None
                     else "".join(f"{n}\n" for n in res.plan.nodes))
    if res.plan.missing:
        click.echo("\n".join(lines), err=True)
        raise RequestError(f"no replacement for {compress(res.plan.missing)}: nothing applied")
    if do_apply and res.unchecked:  # an answer placer cannot check is not applied
        click.echo("\n".join(lines), err=True)
        raise RequestError(f"job {job}: the replacement cannot be checked against the job's constraints "
                           f"({res.unchecked}): nothing applied")
    if do_apply:
        done = apply_replacement(view, res.plan.nodes, keep_begin_time)
        lines.append(f"  applied: job {job} {' and '.join(done)}")
        result["applied"] = True
    click.echo(json_text(result, indent=1) if fmt == "json" else "\n".join(lines))
