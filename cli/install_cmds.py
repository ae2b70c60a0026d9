"""`placer hook install|uninstall|check` (job_submit.lua where slurmctld reads it, checked, and undone) and
`placer service install` (systemd units for serve and apply)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from plugins.hook_install import install, plan_install, round_trip, uninstall
from plugins.pyslurm_backend import choose_backend
from plugins.services import missing_accounts, placer_executable, render, unreachable, verify
from topology import BackendError, RequestError
from topology.hostlists import compress
from topology.outputs import write_atomic

from .config import DEFAULT_CONFIG, SiteConfig, config_path, load_config
from .serve_cmds import CONFIG, SITE_SLURM_CONF

DEFAULT_SLURM_CONF = Path("/etc/slurm/slurm.conf")


def _slurm_conf(site: SiteConfig, flag: str | None) -> Path:
    return Path(flag or site.slurm_conf or DEFAULT_SLURM_CONF)


@click.group()
def hook() -> None:
    """The submit-time hook (job_submit.lua): install, check, uninstall."""


@hook.command("install")
@CONFIG
@SITE_SLURM_CONF
@click.option("--dry-run", is_flag=True, help="Say what would be done and what is missing; change nothing.")
@click.option("--edit-slurm-conf", is_flag=True, help="Also add lua to JobSubmitPlugins in slurm.conf (the line as "
              "it was is kept for `placer hook uninstall`).")
def install_cmd(config_path: str | None, slurm_conf: str | None, dry_run: bool, edit_slurm_conf: bool) -> None:
    """Write job_submit.lua beside slurm.conf with the configured socket, budget and back-off.

    \b
    Checks lua-socket and lua-cjson, that SlurmUser can reach the socket's directory, and JobSubmitPlugins;
    prints exactly what is left to do (packages, the slurm.conf line, restarting slurmctld).
    Example:
      placer hook install --dry-run          # what would change, what is missing
      placer hook install --edit-slurm-conf && systemctl restart slurmctld
    """
    site = load_config(config_path)
    conf = _slurm_conf(site, slurm_conf)
    plan = plan_install(conf, site.serve.socket_path, site.hook_budget_s, site.hook_backoff_s)
    for line in plan.ok:
        click.echo(f"ok: {line}")
    for line in plan.problems:
        click.echo(f"problem: {line}", err=True)
    if dry_run:
        click.echo(f"would write {plan.script} (socket {site.serve.socket_path}, budget {site.hook_budget_s:g} s, "
                   f"back-off {site.hook_backoff_s:g} s)")
        if edit_slurm_conf and plan.conf_new:
            click.echo(f"would set {plan.conf_new} in {conf}")
    else:
        for line in install(plan, conf, edit_slurm_conf):
            click.echo(line)
    for line in plan.todo if not (edit_slurm_conf and plan.conf_new and not dry_run) else []:
        click.echo(f"to do: {line}")
    if plan.problems:
        raise RequestError(f"{len(plan.problems)} problem(s) stop the hook from working (above)")


@hook.command("uninstall")
@CONFIG
@SITE_SLURM_CONF
@click.option("--force", is_flag=True, help="Remove the script even if it was edited since it was installed.")
def uninstall_cmd(config_path: str | None, slurm_conf: str | None, force: bool) -> None:
    """Put back what `placer hook install` replaced: the previous job_submit.lua (or none), the JobSubmitPlugins
    line as it was. Submits stop passing through placer once slurmctld restarts."""
    for line in uninstall(_slurm_conf(load_config(config_path), slurm_conf), force):
        click.echo(line)


@hook.command("check")
@CONFIG
@SITE_SLURM_CONF
@click.option("--partition", help="The test job's partition [the config's first, else the first Slurm lists].")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True, help="GPUs the test job asks for.")
def check_cmd(config_path: str | None, slurm_conf: str | None, partition: str | None, gpus: int) -> None:
    """Run the installed job_submit.lua as slurmctld would, on a test job, against the running daemon.

    Exit 0 when the daemon answered (advice or a reason for none), 3 when the hook failed open. Nothing is
    submitted; advice reserves its nodes in the daemon for reservation_ttl_s (30 s by default).
    """
    site = load_config(config_path)
    conf = _slurm_conf(site, slurm_conf)
    script = conf.parent / "job_submit.lua"
    if not script.exists():
        raise RequestError(f"{script} does not exist: run `placer hook install` first")
    nodes = choose_backend(site.backend, str(conf)).snapshot().partition_nodes() or {}
    name = partition or (site.serve.partitions[0] if site.serve.partitions else next(iter(nodes), None))
    if name is None or name not in nodes:
        raise BackendError(f"partition {name!r} is not listed by Slurm (sinfo)")
    parts = {name: {"name": name, "nodes": compress(nodes[name]), "flag_default": 1}}
    job = {"name": "placer-hook-check", "partition": name, "tres_per_job": f"gres:gpu:{gpus}"}
    out = round_trip(script, job, parts)
    for line in out["log"]:
        click.echo(f"hook: {line}")
    after = out["job"]
    click.echo(f"job after the hook: req_nodes={after.get('req_nodes', '-')} min_nodes={after.get('min_nodes', '-')} "
               f"switches={after.get('req_switch', '-')}")
    if out.get("fail_open"):
        raise BackendError("the hook failed open: the daemon did not answer (is `placer serve` running on "
                           f"{site.serve.socket_path}?)")
    click.echo("ok: the daemon answered the hook")


@click.group()
def service() -> None:
    """systemd units for `placer serve` and `placer apply --watch`."""


@service.command("install")
@CONFIG
@click.option("--unit-dir", type=click.Path(file_okay=False), default="/etc/systemd/system", show_default=True)
@click.option("--user", default="placer", show_default=True, help="The daemon's own user.")
@click.option("--apply-user", default="slurm", show_default=True,
              help="The apply loop's user: it changes other users' jobs, which Slurm allows SlurmUser, root and "
              "operators.")
@click.option("--group", default="slurm", show_default=True,
              help="Both units' group: SlurmUser's, so slurmctld reaches the socket.")
@click.option("--dry-run", is_flag=True, help="Print the units; write nothing.")
def service_install_cmd(config_path: str | None, unit_dir: str, user: str, apply_user: str, group: str,
                        dry_run: bool) -> None:
    """Write placer-serve.service and placer-apply.service for this install (its own placer executable).

    \b
    Example:
      placer service install && systemctl daemon-reload && systemctl enable --now placer-serve
      systemctl enable --now placer-apply      # steer mode only
    """
    path, _ = config_path_for(config_path)
    units = render(user, apply_user, group, path)
    if dry_run:
        for name, text in units.items():
            click.echo(f"# {Path(unit_dir) / name}\n{text}")
    else:
        for name in write_units(Path(unit_dir), units):
            click.echo(f"replaced {Path(unit_dir) / name}, which differed from this install's (edits belong in a "
                       f"drop-in, `systemctl edit {name}`, which a reinstall keeps)")
        problem = verify([Path(unit_dir) / n for n in units])
        if problem and problem != "systemd-analyze is absent":
            raise RequestError(f"systemd-analyze verify: {problem}")
        click.echo(f"wrote {', '.join(str(Path(unit_dir) / n) for n in units)}")
    for cmd in missing_accounts(user, apply_user, group):
        click.echo(f"to do: {cmd}")
    if (blocked := unreachable(placer_executable())) is not None:
        click.echo(f"to do: the units' users cannot enter {blocked} on the way to {placer_executable()} or its "
                   "Python: install placer into a venv made with Debian's /usr/bin/python3 under /opt "
                   "(docs/operations.md)")
    click.echo("to do: systemctl daemon-reload && systemctl enable --now placer-serve (and placer-apply in steer mode)")


def config_path_for(flag: str | None) -> tuple[Path, bool]:
    path, named = config_path(flag)
    return path or DEFAULT_CONFIG, named


def write_units(unit_dir: Path, units: dict[str, str]) -> list[str]:
    """Both units or neither: a directory this user cannot write (not root) is refused before the first.
    Returns the units that were there and differed (an admin's edits: said, since they are replaced)."""
    if not unit_dir.is_dir():
        raise RequestError(f"unit directory {unit_dir} does not exist")
    if not os.access(unit_dir, os.W_OK):
        raise RequestError(f"cannot write into {unit_dir} (run as root); nothing written")
    differed = [name for name, text in units.items() if _differs(unit_dir / name, text)]
    for name, text in units.items():
        try:
            write_atomic(unit_dir / name, text, 0o644)
        except OSError as exc:
            raise RequestError(f"cannot write {unit_dir / name}: {exc.strerror or exc}") from None
    return differed


def _differs(path: Path, text: str) -> bool:
    try:
        return path.read_text(errors="replace") != text
    except FileNotFoundError:
        return False
