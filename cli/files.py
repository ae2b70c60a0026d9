"""Reading inputs and writing outputs for the CLI: atomic writes, so a failure leaves nothing half-written."""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from topology import Fabric, InventoryError, Problem, load_inventory
from topology.generate import PRESETS, design_for, generate


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError([Problem("", f"cannot read file: {exc.strerror}")], path) from None
    except UnicodeDecodeError:
        raise InventoryError([Problem("", "not a UTF-8 text file")], path) from None


def write_output(path: str | None, text: str) -> None:
    """Write to `path` atomically (temp file + rename), or to stdout when path is None or '-'."""
    if path in (None, "-"):
        sys.stdout.write(text)
        return
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise InventoryError([Problem("", f"output directory {str(directory)!r} does not exist")], str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp makes 0600; Slurm's daemons (SlurmUser) must read what we export: keep the mode of
        # the file replaced, else what a plain open() would give under the umask
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
