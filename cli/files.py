"""Reading inputs and writing outputs for the CLI: atomic writes, so a failure leaves nothing half-written."""
from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

from topology import Fabric, InventoryError, Problem, RequestError, load_inventory
from topology.generate import PRESETS, design_for, generate
from topology.inputs import exists, parse_json, parse_yaml, read_input
from topology.outputs import write_atomic


def read_text(path: str, replace_undecodable: bool = False) -> str:
    """A text file within placer's limits, BOM dropped and line ends LF (topology/inputs.py). With
    `replace_undecodable`, bytes that are not UTF-8 read as U+FFFD, said on stderr with their count."""
    text, problem = read_input(path, replace_undecodable)
    if text is None:
        raise InventoryError([problem or Problem("", "unreadable")], path)
    if problem is not None:
        sys.stderr.write(f"placer: warning: {path}: {problem.message}\n")
    return text


def read_document(path: str, fmt: str = "yaml") -> Any:
    """A YAML (or JSON) document within placer's limits; every problem is a RequestError naming the file."""
    problems: list[Problem] = []
    text = read_text(path)
    doc = parse_json(text, problems) if fmt == "json" else parse_yaml(text, problems)
    if problems:
        raise RequestError(problems=problems, source=path)
    return doc


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def json_text(doc: Any, indent: int | None = 1) -> str:
    """JSON every reader accepts: a number that is not finite (a mean of nothing) is written as null, never as
    the NaN / Infinity that strict parsers (jq, cjson, browsers) refuse."""
    return json.dumps(_finite(doc), indent=indent, allow_nan=False)


def write_output(path: str | None, text: str) -> None:
    """Write to `path` atomically (temp file + rename), or to stdout when path is None or '-'."""
    if path in (None, "-"):
        sys.stdout.write(text)
        return
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        if not directory.is_dir():
            raise InventoryError([Problem("", f"output directory {str(directory)!r} does not exist")], str(path))
        # Slurm's daemons (SlurmUser) must read what we export: keep the mode of the file replaced, else
        # what a plain open() would give under the umask
        write_atomic(target, text, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask())
    except OSError as exc:  # not ours to write (a directory of root's, a full disk): the old file stays whole
        raise InventoryError([Problem("", f"cannot write file: {exc.strerror or exc}")], str(path)) from None


def need_writable(path: str | None, directory: bool = False) -> None:
    """Refuse, before a long run, an output this user could not write at its end (a file's directory, or a
    directory to be made under its nearest existing parent): RequestError naming it. None or '-': stdout."""
    if path in (None, "-"):
        return
    p = Path(path).absolute()
    if not directory and _not_regular(p):  # a device or pipe (/dev/stdout): written in place (write_atomic)
        if not os.access(p, os.W_OK):
            raise RequestError(problems=[Problem("", "cannot write it (as this user); nothing was run")],
                               source=str(path))
        return
    # a file is replaced where it really is (through a symlink: in its target's directory)
    there = p if directory else Path(os.path.realpath(p)).parent
    if not directory and not exists(there):  # (write_output makes no directories)
        raise RequestError(problems=[Problem("", f"output directory {str(there)!r} does not exist; nothing was run")],
                           source=str(path))
    while not exists(there) and there != there.parent:
        there = there.parent
    if not os.access(there, os.W_OK | os.X_OK):
        raise RequestError(problems=[Problem("", f"cannot write into {there} (as this user); nothing was run")],
                           source=str(path))


def _not_regular(p: Path) -> bool:
    try:
        return not stat.S_ISREG(os.stat(p).st_mode)
    except OSError:  # not there (yet), or not ours to see: the directory's check says
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_fabric(source: str) -> tuple[Fabric, list[Problem]]:
    """An inventory file, or `preset:NAME` for a built-in generated fabric."""
    if source.startswith("preset:"):
        name = source.split(":", 1)[1]
        if name not in PRESETS:
            raise InventoryError([Problem("", f"unknown preset {name!r}; one of {', '.join(PRESETS)}")], source)
        return generate(design_for(name)), []
    return load_inventory(source)
