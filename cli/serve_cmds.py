"""`placer serve` and `placer apply`."""
from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import click

from placer.timeline import DEFAULT_HOLD_S
from plugins.apply import ApplyReport, apply_loop, report_pass
from plugins.apply import release_all as release_all_jobs
from plugins.pyslurm_backend import choose_backend
from plugins.refresh_worker import ProcessRefresher
from plugins.serve import Daemon, ServeConfig, serve, with_overrides
from topology import BackendError, Fabric

from .config import load_config
from .files import load_fabric
from .params import FiniteRange

log = logging.getLogger("placer")
def load_serve_config(path: str | None) -> ServeConfig:
    """The daemon's settings from the site configuration (cli/config.py)."""
    return load_config(path).serve


def _stop_on_signals(event: threading.Event) -> None:
    """SIGTERM/SIGINT set `event`, from a thread of their own. Python runs the handler in the main thread
    between two steps of whatever it was doing, and that may be just after it took the event's own lock
    inside `event.wait`: an `event.set()` there waits for that lock forever (seen: a `placer serve`
    that never stopped after SIGTERM, its main thread blocked in its own handler). The main thread must
    also never block without a timeout (see plugins/serve.py: serve)."""
    def handler(*_: object) -> None:
        threading.Thread(target=event.set, name="stop-on-signal", daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


CONFIG = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                      help="The site configuration [env PLACER_CONFIG, else /etc/placer/placer.yaml when present].")
SITE_SLURM_CONF = click.option("--slurm-conf", envvar="SLURM_CONF", type=click.Path(dir_okay=False),
                               help="slurm.conf for the Slurm commands [env SLURM_CONF, else the config's].")
SITE_BACKEND = click.option("--backend", type=click.Choice(["auto", "slurm-cli", "pyslurm"]),
                            help="How to talk to Slurm (auto: pyslurm when it imports) [the config's, else auto].")


@click.command("serve")
@click.option("--inventory", help="Inventory YAML or preset:NAME (the fabric Slurm runs) [the config's].")
@CONFIG
@click.option("--socket", "socket_path", envvar="PLACER_SOCKET", type=click.Path(dir_okay=False),
              help="Unix socket job_submit.lua connects to [default /run/placer/placer.sock].")
@click.option("--socket-group", help="Group of the socket: Slurm's SlurmUser [default slurm].")
@click.option("--mode", envvar="PLACER_MODE", type=click.Choice(["advise", "steer"]),
              help="advise: ReqNodeList or --switches at submit; steer: hold for `placer apply` [advise].")
@click.option("--partition", "partitions", multiple=True, help="Only jobs of these partitions [all].")
@click.option("--all-jobs", is_flag=True, default=None, help="Also answer for jobs without GPUs.")
@click.option("--refresh-s", type=FiniteRange(min=0.1, max=3600),
              help="Refresh from Slurm this often [5].")
@click.option("--node-poll-s", type=FiniteRange(min=0, max=60),
              help="Drain watch: read node states this often, so a node drained a moment ago is never advised; "
              "0 turns it off [0.5].")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Prometheus metrics on 127.0.0.1:PORT/metrics "
              "[off].")
@click.option("--max-hold-s", type=FiniteRange(min=0), help="Steer mode: release a job the hook held once it "
              "has waited this long unpinned (when `placer apply` is not running) [600].")
@click.option("--apply-state-file", type=click.Path(dir_okay=False),
              help="Steer mode: `placer apply`'s state file, read so that after a restart a chained job's hold "
              "counts from when apply saw its dependency met [the config's apply_state_file, else none].")
@SITE_SLURM_CONF
@SITE_BACKEND
def serve_cmd(inventory: str | None, config_path: str | None, socket_path: str | None, socket_group: str | None,
              mode: str | None, partitions: tuple[str, ...], all_jobs: bool | None, refresh_s: float | None,
              node_poll_s: float | None, metrics_port: int | None, max_hold_s: float | None,
              apply_state_file: str | None, slurm_conf: str | None, backend: str | None) -> None:
    """The submit-time daemon that plugins/job_submit.lua asks (one decision per submit, in memory).

    \b
    Examples:
      placer serve                                  # everything from /etc/placer/placer.yaml
      placer serve --inventory inv.yaml --mode advise --metrics-port 9464
      placer hook check                             # a round trip through the installed hook
    """
    site = load_config(config_path)
    inventory = site.need_inventory(inventory)
    slurm_conf, backend = slurm_conf or site.slurm_conf, backend or site.backend
    cfg = with_overrides(site.serve, socket_path=Path(socket_path) if socket_path else None,
                         socket_group=socket_group, mode=mode, partitions=partitions or None,
                         gpu_only=(not all_jobs) if all_jobs else None, refresh_s=refresh_s, node_poll_s=node_poll_s,
                         metrics_port=metrics_port, max_hold_s=max_hold_s)
    state_file = apply_state_file or site.apply_state_file
    cfg = replace(cfg, planner=replace(cfg.planner, degraded_links=site.degraded_links),
                  hold=site.hold(), apply_state_file=Path(state_file) if state_file else None)
    fabric, _ = load_fabric(inventory)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger().setLevel(logging.INFO)  # one line per decision is the point of a daemon log
    daemon = Daemon(fabric, choose_backend(backend, slurm_conf), cfg)
    # refreshes parse Slurm's JSON in a process of their own, never holding up a decision
    worker = ProcessRefresher(_fabric_only, inventory, functools.partial(choose_backend, backend, slurm_conf))
    daemon.take_picture = worker
    _stop_on_signals(daemon.stop)
    try:
        serve(daemon)
    finally:
        worker.close()


def _fabric_only(source: str) -> Fabric:
    """The inventory again, in the refresh worker (a module-level function: the worker is spawned)."""
    return load_fabric(source)[0]


@click.command("apply")
@click.option("--inventory", help="Inventory YAML or preset:NAME [the config's].")
@CONFIG
@click.option("--once", "mode", flag_value="once", default=True, help="One pass (default).")
@click.option("--watch", "mode", flag_value="watch", help="Repeat every --interval-s until stopped.")
@click.option("--interval-s", type=FiniteRange(min=0.1), help="[the config's apply_interval_s, else 2]")
@click.option("--max-hold-s", type=FiniteRange(min=0),
              help="Release a held job unpinned once it has waited this long [the config's, else 600].")
@click.option("--hold", "hold_s", type=FiniteRange(min=0),
              help="Placer's scheduler: a multi-node job that would span more leaves than it needs waits (pinned to "
              "the block within its bound that frees soonest, by Slurm's EndTimes) at most this long from "
              "submission, or hold_share of a longer job's time limit (up to hold_max_s); 0: never "
              f"[the config's hold_s, else {DEFAULT_HOLD_S:g}].")
@click.option("--release-all", is_flag=True, help="Emergency: release every job the hook held, and exit.")
@click.option("--solver", type=click.Choice(["greedy", "cpsat"]),
              help="How a held job's leaves are chosen: the greedy answer, or CP-SAT improving on it within "
              "apply_work_limit work units [the config's apply_solver, else cpsat].")
@click.option("--time-limit-s", type=FiniteRange(min=0.001),
              help="With --solver cpsat: the wall clock's cap per CP-SAT solve [the config's apply_time_limit_s, "
              "else 0.05].")
@click.option("--socket", "socket_path", envvar="PLACER_SOCKET", type=click.Path(dir_okay=False),
              help="`placer serve`'s socket: each pass is reported there (its metric placer_last_apply_age_seconds) "
              "[the config's, else /run/placer/placer.sock].")
@click.option("--state-file", type=click.Path(dir_okay=False),
              help="Keep held jobs' hold clocks here between passes and processes (a chained job's hold counts "
              "from when its dependency was seen met; without it a cron --once counts from submission) "
              "[the config's apply_state_file, else in memory only].")
@SITE_SLURM_CONF
@SITE_BACKEND
def apply_cmd(inventory: str | None, config_path: str | None, mode: str, interval_s: float | None,
              max_hold_s: float | None, hold_s: float | None, release_all: bool, solver: str | None,
              time_limit_s: float | None, socket_path: str | None, state_file: str | None,
              slurm_conf: str | None, backend: str | None) -> None:
    """Held jobs -> one batch plan -> ReqNodeList and NumNodes -> release (steer mode).

    \b
    Examples:
      placer apply --once                  # one pass; exit 3 if a job could not be pinned or released
      placer apply --once --state-file /var/lib/placer/apply-state.json   # from cron: the hold clocks kept
      placer apply --watch                 # as the placer-apply unit runs it
      placer apply --release-all           # emergency: give every held job back to Slurm
    """
    site = load_config(config_path)
    inventory = site.need_inventory(inventory)
    slurm_conf, backend = slurm_conf or site.slurm_conf, backend or site.backend
    interval_s = interval_s if interval_s is not None else site.apply_interval_s
    max_hold_s = max_hold_s if max_hold_s is not None else site.serve.max_hold_s
    hold = site.hold(hold_s)
    socket_path = socket_path or str(site.serve.socket_path)
    state_file = state_file or site.apply_state_file
    fabric, _ = load_fabric(inventory)
    be = choose_backend(backend, slurm_conf)
    if release_all:
        done = release_all_jobs(be)
        click.echo(f"released {len(done)} held job(s)" + (f": {done}" if done else ""))
        return
    stop = threading.Event()
    _stop_on_signals(stop)
    def report(r: ApplyReport) -> None:
        _print_report(r)
        report_pass(Path(socket_path))

    planner = site.planner(solver, time_limit_s)
    last = apply_loop(fabric, be, planner, max_hold_s,
                      interval_s if mode == "watch" else None, stop, report, hold,
                      Path(state_file) if state_file else None)
    if mode == "once" and last.errors:
        raise BackendError(f"{len(last.errors)} error(s): jobs not pinned or released, or a wrong inventory "
                           "(see above)")


def _print_report(r: ApplyReport) -> None:
    for jid, nodes in r.pinned:
        click.echo(f"job {jid}: pinned to {nodes}, released")
    for jid, nodes, at in r.reserved:
        click.echo(f"job {jid}: pinned to {nodes}, released; starts when they free (EndTime in about "
                   f"{max(at - time.time(), 0):.0f} s)")
    for jid, old, nodes, at in r.moved:
        when = "free now" if at <= time.time() else f"which free sooner (EndTime in about {at - time.time():.0f} s)"
        click.echo(f"job {jid}: moved from {old} to {nodes}, {when}")
    for jid, why in r.released_unpinned:
        click.echo(f"job {jid}: released unpinned ({why})")
    for jid, why in r.waiting:
        click.echo(f"job {jid}: stays held: {why}")
    for e in r.errors:
        click.echo(f"placer: error: {e}", err=True)
