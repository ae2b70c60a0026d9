"""systemd units for `placer serve` and `placer apply --watch`, rendered for this install and written.

The templates ship in the package (plugins/systemd/); `render` fills in the placer executable of this
install, the users and group, and the config file, so a unit always runs the placer that wrote it.
"""
from __future__ import annotations

import grp
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATES = Path(__file__).with_name("systemd")
UNITS = ("placer-serve.service", "placer-apply.service")


def placer_executable() -> str:
    """The `placer` console script of the running interpreter's install (a venv's, or the system's)."""
    beside = Path(sys.executable).with_name("placer")
    return str(beside) if beside.exists() else (shutil.which("placer") or str(beside))


def render(user: str, apply_user: str, group: str, config: Path, placer: str | None = None) -> dict[str, str]:
    values = {"@PLACER@": placer or placer_executable(), "@USER@": user, "@APPLY_USER@": apply_user,
              "@GROUP@": group, "@CONFIG@": str(config)}
    out = {}
    for name in UNITS:
        text = (TEMPLATES / name).read_text()
        for k, v in values.items():
            text = text.replace(k, v)
        out[name] = text
    return out


def missing_accounts(user: str, apply_user: str, group: str) -> list[str]:
    """The commands that would create what the units name but this machine lacks."""
    todo = []
    try:
        grp.getgrnam(group)
    except KeyError:
        todo.append(f"groupadd --system {group}")
    for u in dict.fromkeys((user, apply_user)):
        try:
            pwd.getpwnam(u)
        except KeyError:
            todo.append(f"useradd --system --gid {group} --no-create-home --shell /usr/sbin/nologin {u}")
    return todo


def unreachable(executable: str) -> Path | None:
    """A directory on the way to the script or its interpreter that other users cannot enter (None: all can).
    Seen on a machine whose Python lived under /root (pyenv): the unit's user got `Permission denied`."""
    script = Path(executable)
    targets = [script]
    try:
        first = script.read_text(errors="replace").splitlines()[0]
        if first.startswith("#!"):
            targets.append(Path(first[2:].split()[0]))
    except (OSError, IndexError):
        pass
    for target in targets:
        real = target.resolve()
        for d in [*reversed(real.parents)]:
            if d.exists() and not d.stat().st_mode & 0o001:
                return d
    return None


def verify(paths: list[Path]) -> str | None:
    """`systemd-analyze verify` on unit files: None when clean, else what it printed."""
    if not shutil.which("systemd-analyze"):
        return "systemd-analyze is absent"
    done = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True, timeout=60)
    text = (done.stdout + done.stderr).strip()
    return None if done.returncode == 0 and not text else text or f"exit {done.returncode}"
