"""`placer`: entry point, shared context, and the one place errors become exit codes."""
from __future__ import annotations

import logging
import os
import pwd
import sys
import traceback
from dataclasses import dataclass

import click

from topology import BackendError, InventoryError, PlacerError, RequestError

from .exitcodes import Exit
from .report import set_verbose, verbose


@dataclass
class Context:
    verbose: int = 0


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-vv for debug).")
@click.version_option(package_name="gpu-placer", prog_name="placer")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Topology-aware GPU job placement for Slurm.

    Exit codes: 0 ok, 1 internal error (a bug: please report), 2 bad input, 3 Slurm/backend failure.
    """
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="placer: %(levelname)s: %(message)s", stream=sys.stderr)
    ctx.obj = Context(verbose=verbose)
    set_verbose(verbose)


def _register() -> None:
    from .install_cmds import hook, service
    from .plan_cmd import plan_cmd
    from .ranks_cmds import ranks_cmd, replace_cmd
    from .reserve_cmd import reserve_cmd
    from .serve_cmds import apply_cmd, serve_cmd
    from .simulate_cmd import simulate_cmd, trace
    from .slurm_cmds import lab, slurm
    from .status_cmd import status_cmd
    from .topology_cmds import topology
    from .why_cmd import why_cmd

    cli.add_command(topology)
    cli.add_command(plan_cmd)
    cli.add_command(lab)
    cli.add_command(slurm)
    cli.add_command(serve_cmd)
    cli.add_command(apply_cmd)
    cli.add_command(simulate_cmd)
    cli.add_command(trace)
    cli.add_command(ranks_cmd)
    cli.add_command(replace_cmd)
    cli.add_command(hook)
    cli.add_command(service)
    cli.add_command(status_cmd)
    cli.add_command(why_cmd)
    cli.add_command(reserve_cmd)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes print a clear message and an exit code, never a traceback."""
    set_verbose(0)
    try:
        cli.main(args=argv, prog_name="placer", standalone_mode=False)
        return Exit.OK
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:  # usage errors
        exc.show()
        return Exit.BAD_INPUT
    except click.exceptions.Abort:
        click.echo("placer: aborted", err=True)
        return Exit.BAD_INPUT
    except InventoryError as exc:
        click.echo(exc.render(verbose()), err=True)
        n = sum(1 for p in exc.problems if p.severity == "error")
        click.echo(f"placer: {n} error(s){' in ' + exc.source if exc.source else ''}; nothing written", err=True)
        return Exit.BAD_INPUT
    except RequestError as exc:
        if exc.problems:
            click.echo(exc.render(), err=True)
            click.echo(f"placer: {len(exc.problems)} problem(s){' in ' + exc.source if exc.source else ''}; "
                       f"nothing written", err=True)
        else:
            click.echo(f"placer: error: {exc}", err=True)
        return Exit.BAD_INPUT
    except BackendError as exc:
        click.echo(f"placer: backend error: {exc}", err=True)
        return Exit.BACKEND
    except PlacerError as exc:
        click.echo(f"placer: error: {exc}", err=True)
        return Exit.BAD_INPUT
    except PermissionError as exc:  # a file this user may not read or write that no check above caught: said
        click.echo(f"placer: error: {exc.filename or ''}: {exc.strerror or exc} (as user {_user()})",
                   err=True)
        return Exit.BAD_INPUT
    except BrokenPipeError:  # `placer ... | head`
        return Exit.OK
    except KeyboardInterrupt:
        click.echo("placer: interrupted", err=True)
        return 130
    except Exception:  # a bug: show it, distinctly from user errors
        traceback.print_exc()
        click.echo("placer: internal error (a bug in placer; please report it with the traceback above)", err=True)
        return Exit.INTERNAL


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # `python -m cli.main`
    entry()
