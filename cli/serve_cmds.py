"""`placer serve` and `placer apply`."""
from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from placer import PlannerConfig
from plugins.apply import ApplyReport, apply_loop, report_pass
from plugins.apply import release_all as release_all_jobs
from plugins.pyslurm_backend import choose_backend
from plugins.refresh_worker import ProcessRefresher
from plugins.serve import Daemon, ServeConfig, serve, with_overrides
from topology import BackendError, Fabric, Problem, RequestError

from .files import load_fabric, read_document
from .params import FiniteRange
from .slurm_cmds import BACKEND, SLURM_CONF

log = logging.getLogger("placer")
def _text(v: Any) -> str | None:
    return "a non-empty text" if not isinstance(v, str) or not v.strip() else None


def _number(lo: float, hi: float, whole: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        kinds = (int,) if whole else (int, float)
        if isinstance(v, bool) or not isinstance(v, kinds) or not (lo <= v <= hi):  # NaN fails the range too
            return f"a {'whole ' if whole else ''}number from {lo:g} to {hi:g}"
        return None
    return check


# config key -> (ServeConfig field, check returning what the value should be, or None when it is fine)
_CONFIG_KEYS: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "socket": ("socket_path", lambda v: _text(v) or (None if str(v).startswith("/") else "an absolute path")),
    "socket_group": ("socket_group", _text),
    "mode": ("mode", lambda v: None if v in ("advise", "steer") else "advise or steer"),
    "partitions": ("partitions", lambda v: None if isinstance(v, list) and all(isinstance(p, str) and p for p in v)
                   else "a list of partition names"),
    "gpu_only": ("gpu_only", lambda v: None if isinstance(v, bool) else "true or false"),
    "opt_out": ("opt_out", _text),
    "refresh_s": ("refresh_s", _number(0.1, 3600)),
    "node_poll_s": ("node_poll_s", lambda v: None if v == 0 else _number(0.1, 60)(v)),
    "max_wait4switch_s": ("max_wait4switch_s", _number(0, 7 * 24 * 3600, whole=True)),
    "reservation_ttl_s": ("reservation_ttl_s", _number(1, 3600)),
    "stale_request_s": ("stale_request_s", _number(0.1, 3600)),
    "max_state_age_s": ("max_state_age_s", _number(1, 24 * 3600)),
    "max_hold_s": ("max_hold_s", _number(0, 7 * 24 * 3600)),
    "metrics_port": ("metrics_port", _number(1, 65535, whole=True)),
}


def load_serve_config(path: str | None) -> ServeConfig:
    """The serve config file: every bad or unknown key is reported at once (exit 2), nothing is guessed."""
    cfg = ServeConfig()
    if not path:
        return cfg
    doc = read_document(path) or {}
    if not isinstance(doc, dict):
        raise RequestError(f"{path}: a serve config is a mapping of settings")
    problems = []
    kw: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in _CONFIG_KEYS:
            problems.append(Problem(str(key), f"unknown setting (known: {', '.join(sorted(_CONFIG_KEYS))})"))
            continue
        name, check = _CONFIG_KEYS[key]
        want = check(value)
        if want:
            problems.append(Problem(str(key), f"expected {want}, got {value!r}"))
        else:
            kw[name] = value
    if problems:
        raise RequestError(problems=problems, source=path)
    if "socket_path" in kw:
        kw["socket_path"] = Path(kw["socket_path"])
    if "partitions" in kw:
        kw["partitions"] = tuple(kw["partitions"])
    return with_overrides(cfg, **kw)


def _stop_on_signals(event: threading.Event) -> None:
    # Python runs the handler in the main thread, so that thread must never block without a timeout (see
    # plugins/serve.py: serve)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: event.set())


@click.command("serve")
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME (the fabric Slurm runs).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML with serve settings.")
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
@SLURM_CONF
@BACKEND
def serve_cmd(inventory: str, config_path: str | None, socket_path: str | None, socket_group: str | None,
              mode: str | None, partitions: tuple[str, ...], all_jobs: bool | None, refresh_s: float | None,
              node_poll_s: float | None, metrics_port: int | None, max_hold_s: float | None, slurm_conf: str | None,
              backend: str) -> None:
    """The submit-time daemon that plugins/job_submit.lua asks (one decision per submit, in memory)."""
    cfg = with_overrides(load_serve_config(config_path), socket_path=Path(socket_path) if socket_path else None,
                         socket_group=socket_group, mode=mode, partitions=partitions or None,
                         gpu_only=(not all_jobs) if all_jobs else None, refresh_s=refresh_s, node_poll_s=node_poll_s,
                         metrics_port=metrics_port, max_hold_s=max_hold_s)
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
@click.option("--inventory", required=True, help="Inventory YAML or preset:NAME.")
@click.option("--once", "mode", flag_value="once", default=True, help="One pass (default).")
@click.option("--watch", "mode", flag_value="watch", help="Repeat every --interval-s until stopped.")
@click.option("--interval-s", type=FiniteRange(min=0.1), default=2.0, show_default=True)
@click.option("--max-hold-s", type=FiniteRange(min=0), default=600.0, show_default=True,
              help="Release a held job unpinned once it has waited this long.")
@click.option("--release-all", is_flag=True, help="Emergency: release every job the hook held, and exit.")
@click.option("--time-limit-s", type=FiniteRange(min=0.001), default=0.05, show_default=True,
              help="CP-SAT time limit per job.")
@click.option("--socket", "socket_path", envvar="PLACER_SOCKET", type=click.Path(dir_okay=False),
              default="/run/placer/placer.sock", show_default=True,
              help="`placer serve`'s socket: each pass is reported there (its metric placer_last_apply_age_seconds).")
@SLURM_CONF
@BACKEND
def apply_cmd(inventory: str, mode: str, interval_s: float, max_hold_s: float, release_all: bool,
              time_limit_s: float, socket_path: str, slurm_conf: str | None, backend: str) -> None:
    """Held jobs -> one batch plan -> ReqNodeList and NumNodes -> release."""
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

    last = apply_loop(fabric, be, PlannerConfig(time_limit_s=time_limit_s), max_hold_s,
                      interval_s if mode == "watch" else None, stop, report)
    if mode == "once" and last.errors:
        raise BackendError(f"{len(last.errors)} error(s): jobs not pinned or released, or a wrong inventory "
                           "(see above)")


def _print_report(r: ApplyReport) -> None:
    for jid, nodes in r.pinned:
        click.echo(f"job {jid}: pinned to {nodes}, released")
    for jid, why in r.released_unpinned:
        click.echo(f"job {jid}: released unpinned ({why})")
    for jid, why in r.waiting:
        click.echo(f"job {jid}: stays held: {why}")
    for e in r.errors:
        click.echo(f"placer: error: {e}", err=True)
