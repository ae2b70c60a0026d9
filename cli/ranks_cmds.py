"""`placer ranks` and `placer replace`: rank orders for 3D-parallel jobs, and failed-node replacement."""
from __future__ import annotations

import json
import time

import click

from placer.plan_doc import apply_plan_document
from placer.ranks import Parallelism, name_order_layout, placer_layout, rank_table, traffic
from placer.ranks import hostfile as rank_hostfile
from placer.replace import choose_replacements
from plugins.backend import to_cluster_state
from plugins.pyslurm_backend import choose_backend
from topology import ClusterState, Fabric, Problem, RequestError
from topology.hostlists import HostlistError, compress, expand

from .files import load_fabric, read_text, write_output
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


def _from_plan(fabric: Fabric, plan_path: str, job: str) -> tuple[dict, ClusterState]:
    try:
        doc = json.loads(read_text(plan_path))
    except json.JSONDecodeError as exc:
        raise RequestError(problems=[Problem("", f"not valid JSON: {exc.msg}", line=exc.lineno)], source=plan_path) from None
    state = ClusterState(fabric)
    apply_plan_document(fabric, state, doc, plan_path)
    for p in doc.get("placements", []):
        if str(p.get("job")) == job and p.get("status") == "placed":
            return p, state
    raise RequestError(f"{plan_path}: no placed job {job!r}")


def _from_slurm(fabric: Fabric, slurm_conf: str | None, backend: str, job: str, nodes_opt: str | None):
    be = choose_backend(backend, slurm_conf)
    snap = be.snapshot()
    state = to_cluster_state(fabric, snap).state
    match = [j for j in snap.jobs if str(j.job_id) == job]
    if not match:
        raise RequestError(f"Slurm has no job {job}")
    j = match[0]
    try:
        # a running job's nodes; otherwise (requeued, completing: a partial list) the nodes it requires
        given = expand(nodes_opt) if nodes_opt else []
        nodes = list(j.nodes) if j.state == "RUNNING" else list(given or j.required_nodes or j.nodes)
    except HostlistError as exc:
        raise RequestError(f"--nodes: {exc}") from None
    if not nodes:
        raise RequestError(f"job {job} shows no nodes in Slurm (requeued?): give its old nodes with --nodes")
    bad = [n for n in nodes if n not in fabric.node_index]
    if bad:
        raise RequestError(f"job {job} runs on nodes outside the fabric: {compress(bad)}")
    gpu_ids = {n: list(j.gpu_ids.get(n) or range(int(fabric.node_gpus[fabric.node_index[n]]))) for n in nodes}
    return {"job": job, "nodes": nodes, "gpu_ids": gpu_ids}, state, be, j


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
    placement = _from_plan(fabric, plan_path, job)[0] if plan_path else _from_slurm(fabric, slurm_conf, backend, job,
                                                                                    None)[0]
    gpu_ids = {n: list(v) for n, v in placement["gpu_ids"].items()}
    par = _parallelism(tp, pp, dp, weights, sum(len(v) for v in gpu_ids.values()))
    ours = placer_layout(fabric, gpu_ids, par)
    name = name_order_layout(fabric, gpu_ids, par)
    t_ours, t_name = traffic(fabric, ours, par), traffic(fabric, name, par)
    if hostfile:
        write_output(hostfile, rank_hostfile(fabric, ours))
    if fmt == "json":
        click.echo(json.dumps({"job": job, "tp": par.tp, "pp": par.pp, "dp": par.dp, "ranks": rank_table(fabric, ours, par),
                               "traffic": t_ours, "name_order_traffic": t_name}, indent=1))
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
    if plan_path:
        if do_apply:
            raise click.UsageError("--apply works on the live Slurm, not on a plan")
        placement, state = _from_plan(fabric, plan_path, job)
        be = slurm_job = None
    else:
        placement, state, be, slurm_job = _from_slurm(fabric, slurm_conf, backend, job, nodes_opt)
        deadline = time.monotonic() + 60
        while do_apply and slurm_job.state == "COMPLETING" and time.monotonic() < deadline:
            time.sleep(0.5)  # a requeue in progress: pin the job once it is pending again
            placement, state, be, slurm_job = _from_slurm(fabric, slurm_conf, backend, job, nodes_opt)
        if do_apply and slurm_job.state not in ("PENDING",):
            raise RequestError(f"job {job} is {slurm_job.state}: requeue it first (scontrol requeuehold {job})")
    for n in failed_nodes:
        if n in fabric.node_index:
            state.set_usable(fabric.node_index[n], False)
    nodes = list(placement["nodes"])
    plan = choose_replacements(fabric, state, nodes, failed_nodes, spares_per_su)
    lines = [f"job {job}: {len(failed_nodes)} failed node(s) of {len(nodes)}"]
    for r in plan.replacements:
        lines.append(f"  {r.failed} -> {r.node or '(none)'}: {r.why}")
    result: dict = {"job": job, "replacements": [r.__dict__ for r in plan.replacements], "nodes": plan.nodes}
    if any(v is not None for v in (tp, pp, dp)):
        gpu_ids = {n: list(v) for n, v in placement["gpu_ids"].items()}
        par = _parallelism(tp, pp, dp, weights, sum(len(v) for v in gpu_ids.values()))
        before = placer_layout(fabric, gpu_ids, par)
        swap = {fabric.node_index[r.failed]: fabric.node_index[r.node] for r in plan.replacements if r.node}
        after = [(swap.get(n, n), g) for n, g in before]
        t_before, t_after = traffic(fabric, before, par), traffic(fabric, after, par)
        lines.append(f"  traffic crossing leaves per step: {t_before['cross_leaf']:,.0f} before, "
                     f"{t_after['cross_leaf']:,.0f} after (pods: {t_before['cross_pod']:,.0f} -> "
                     f"{t_after['cross_pod']:,.0f})")
        result.update(ranks=rank_table(fabric, after, par), traffic_before=t_before, traffic_after=t_after)
        if hostfile:
            write_output(hostfile, rank_hostfile(fabric, after))
    elif hostfile:
        write_output(hostfile, "".join(f"{n}\n" for n in plan.nodes))
    if plan.missing:
        click.echo("\n".join(lines), err=True)
        raise RequestError(f"no replacement for {compress(plan.missing)}: nothing applied")
    if do_apply:
        assert be is not None and slurm_job is not None
        be.pin(slurm_job.job_id, compress(plan.nodes), len(plan.nodes))
        if not keep_begin_time:
            be.start_now(slurm_job.job_id)
        if slurm_job.held:
            be.release(slurm_job.job_id)
        lines.append(f"  applied: job {job} pinned to {compress(plan.nodes)}" + (" and released" if slurm_job.held else ""))
        result["applied"] = True
    click.echo(json.dumps(result, indent=1) if fmt == "json" else "\n".join(lines))
