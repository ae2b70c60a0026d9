"""Installing job_submit.lua where slurmctld reads it, checking what it needs, and undoing it exactly.

slurmctld loads `job_submit.lua` from the directory of its slurm.conf when `JobSubmitPlugins` names
`lua`. `install` writes our script there with the site's socket, budget and back-off, after saving any
script it replaces; with `edit_conf` it also adds `lua` to `JobSubmitPlugins`, saving the line as it
was. Everything needed to undo is in `job_submit.lua.placer.json` beside the script; `uninstall`
puts back exactly what was there before (the old script or none, the old line or none). `round_trip`
runs the installed script as slurmctld would (Lua 5.1, a stand-in `slurm` table) against the daemon.
"""
from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topology import BackendError, Problem, RequestError
from topology.inputs import exists, parse_json, read_input
from topology.outputs import write_atomic

HOOK_SOURCE = Path(__file__).with_name("job_submit.lua")
MARK = "job_submit.lua: Slurm's submit-time hook for placer"
STATE_NAME = "job_submit.lua.placer.json"
_PLUGINS = re.compile(r"^\s*JobSubmitPlugins\s*=\s*(\S*)\s*(#.*)?$", re.IGNORECASE)
_USER = re.compile(r"^\s*SlurmUser\s*=\s*(\S+)", re.IGNORECASE)


def render_hook(socket_path: Path, budget_s: float, backoff_s: float) -> str:
    """Our job_submit.lua with a site's socket, budget and back-off filled in (the lab's too)."""
    text = HOOK_SOURCE.read_text()
    text = text.replace('local SOCKET_PATH = "/run/placer/placer.sock"', f'local SOCKET_PATH = "{socket_path}"')
    text = text.replace("local BACKOFF_S = 1.0", f"local BACKOFF_S = {backoff_s:g}")
    return text.replace("local BUDGET_S = 0.05", f"local BUDGET_S = {budget_s:g}")


@dataclass
class Plan:
    """What `install` would do and what it found, as lines an admin reads."""
    script: Path
    text: str
    ok: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)  # what the admin must still do (restart, packages)
    problems: list[str] = field(default_factory=list)  # what stops the hook from working
    conf_line: str | None = None  # JobSubmitPlugins as it is (None: absent)
    conf_new: str | None = None  # the line install would write with edit_conf


def plan_install(slurm_conf: Path, socket_path: Path, budget_s: float, backoff_s: float) -> Plan:
    if not exists(slurm_conf):
        raise RequestError(f"slurm.conf {slurm_conf} does not exist: give --slurm-conf or slurm_conf in the config")
    conf = _read_kept(slurm_conf).splitlines()
    plan = Plan(slurm_conf.parent / "job_submit.lua", render_hook(socket_path, budget_s, backoff_s))
    _check_plugins(plan, conf)
    _check_lua(plan)
    _check_socket_dir(plan, socket_path, _slurm_user(conf))
    return plan


def _check_plugins(plan: Plan, conf: list[str]) -> None:
    found = [m for line in conf if (m := _PLUGINS.match(line))]
    plan.conf_line = found[-1].group(0) if found else None
    plugins = [p for p in (found[-1].group(1).split(",") if found else []) if p]
    if "lua" in plugins:
        plan.ok.append(f"slurm.conf: {plan.conf_line.strip() if plan.conf_line else ''} names lua")
        return
    plan.conf_new = "JobSubmitPlugins=" + ",".join([*plugins, "lua"])
    what = f"replace {plan.conf_line.strip()!r} with" if plan.conf_line is not None else "add"
    plan.todo.append(f"slurm.conf: {what} "
                     f"'{plan.conf_new}' (or run with --edit-slurm-conf), then restart slurmctld "
                     "(systemctl restart slurmctld): JobSubmitPlugins is read at start only")


def _check_lua(plan: Plan) -> None:
    """lua-socket and lua-cjson, as slurmctld's Lua 5.1 would load them."""
    if shutil.which("lua5.1"):
        probe = subprocess.run(["lua5.1", "-e", 'require("socket.unix"); require("cjson")'], capture_output=True,
                               text=True, timeout=10)
        if probe.returncode == 0:
            plan.ok.append("lua-socket and lua-cjson load in Lua 5.1")
        else:
            plan.problems.append("lua-socket or lua-cjson is missing: apt-get install -y lua-socket lua-cjson "
                                 "(without them every job goes in unchanged)")
        return
    missing = [p for p in ("lua-socket", "lua-cjson") if not _dpkg_installed(p)]
    if missing:
        plan.problems.append(f"{' and '.join(missing)} not installed: apt-get install -y {' '.join(missing)}")
    else:
        plan.ok.append("lua-socket and lua-cjson are installed (lua5.1 absent: not loaded to check)")


def _dpkg_installed(package: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return done.returncode == 0 and "install ok installed" in done.stdout


def _slurm_user(conf: list[str]) -> str:
    found = [m.group(1) for line in conf if (m := _USER.match(line))]
    return found[-1] if found else "root"  # Slurm's default


def _check_socket_dir(plan: Plan, socket_path: Path, slurm_user: str) -> None:
    """slurmctld runs as SlurmUser: it must be able to reach the socket's directory."""
    d = socket_path.parent
    try:
        user = pwd.getpwnam(slurm_user)
    except KeyError:
        plan.problems.append(f"SlurmUser {slurm_user!r} (slurm.conf) is not a user on this machine")
        return
    if not d.exists():
        plan.ok.append(f"{d} does not exist yet: the placer-serve unit makes it (RuntimeDirectory, mode 0750, "
                       f"group slurm), or `placer serve` itself (as root: mode 0750, group socket_group); the "
                       f"socket is group socket_group, mode 0660")
        return
    st = d.stat()
    groups = {g.gr_gid for g in grp.getgrall() if slurm_user in g.gr_mem} | {user.pw_gid}
    can = user.pw_uid == 0 or (st.st_uid == user.pw_uid and st.st_mode & 0o100) or \
        (st.st_gid in groups and st.st_mode & 0o010) or st.st_mode & 0o001
    if can:
        plan.ok.append(f"SlurmUser {slurm_user} can reach {d} (owner {st.st_uid}, mode {oct(st.st_mode & 0o777)})")
    else:
        plan.problems.append(f"SlurmUser {slurm_user} cannot reach {d} (owner {st.st_uid}, group {st.st_gid}, mode "
                             f"{oct(st.st_mode & 0o777)}): chmod o+x {d}, or chgrp it to {slurm_user}'s group")


def _read_kept(path: Path) -> str:
    """slurm.conf or a site's job_submit.lua as text, byte for byte: a comment in Latin-1 (Slurm reads bytes)
    survives the round trip (surrogateescape, here and in `_write`). RequestError when it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise RequestError(problems=[Problem("", f"cannot read file: {exc.strerror or exc}")],
                           source=str(path)) from None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Atomically (temp file + rename), readable by SlurmUser."""
    write_atomic(path, text, mode, errors="surrogateescape")


def _need_to_write(script: Path, conf: Path | None) -> None:
    """Refused before anything is written when this user cannot write the script's directory (or slurm.conf):
    a half-done install (the script written, its state not) is what this keeps from happening. Each file is
    replaced where it really is (through a symlink: in its target's directory)."""
    files = [f for f in (script, conf) if f is not None]
    for target in [script.parent, *[Path(os.path.realpath(f)).parent for f in files]]:
        if not os.access(target, os.W_OK):
            raise RequestError(f"cannot write {target} (run as root, or as the owner of Slurm's config); "
                               "nothing changed")


_STATE_KEYS = {"previous_script", "installed_sha256", "previous_conf_line", "conf_line"}


def _state(path: Path) -> dict[str, Any]:
    """What install kept (the script and line it replaced); refused, naming the file, when it is not that."""
    text, problem = read_input(path)
    problems = [problem] if problem is not None else []
    doc = parse_json(text, problems) if text is not None else None
    if not problems and (not isinstance(doc, dict) or not set(doc) <= _STATE_KEYS
                         or not all(v is None or isinstance(v, str) for v in doc.values())):
        problems.append(Problem("", "not what `placer hook install` writes (an object of "
                                    f"{', '.join(sorted(_STATE_KEYS))}: text or null)"))
    if problems or not isinstance(doc, dict):
        raise RequestError(problems=problems, source=str(path))
    return doc


def install(plan: Plan, slurm_conf: Path, edit_conf: bool) -> list[str]:
    """Write the script (and the JobSubmitPlugins line with edit_conf); returns what was done."""
    state_path = plan.script.with_name(STATE_NAME)
    _need_to_write(plan.script, slurm_conf if edit_conf and plan.conf_new is not None else None)
    state = _state(state_path) if exists(state_path) else {}
    done = []
    if "previous_script" not in state:  # the first install keeps what was there, whatever it was
        state["previous_script"] = _read_kept(plan.script) if exists(plan.script) else None
    _write(plan.script, plan.text)
    state["installed_sha256"] = _sha(plan.text)
    done.append(f"wrote {plan.script}" + (" (the previous script is kept for `placer hook uninstall`)"
                                          if state["previous_script"] is not None else ""))
    if edit_conf and plan.conf_new is not None:
        lines = _read_kept(slurm_conf).splitlines(keepends=True)
        state.setdefault("previous_conf_line", plan.conf_line)
        state["conf_line"] = plan.conf_new
        if plan.conf_line is None:
            lines.append(("" if not lines or lines[-1].endswith("\n") else "\n") + plan.conf_new + "\n")
        else:
            k = max(i for i, line in enumerate(lines) if line.rstrip("\n") == plan.conf_line)
            lines[k] = plan.conf_new + "\n"
        _write(slurm_conf, "".join(lines), os.stat(slurm_conf).st_mode & 0o777)
        done.append(f"slurm.conf: set {plan.conf_new}; now restart slurmctld (systemctl restart slurmctld)")
    _write(state_path, json.dumps(state, indent=1) + "\n", 0o600)
    return done


def uninstall(slurm_conf: Path, force: bool = False) -> list[str]:
    """Put back exactly what was there before install; refuses a script edited since (unless force)."""
    script = slurm_conf.parent / "job_submit.lua"
    state_path = script.with_name(STATE_NAME)
    if not exists(state_path):
        raise RequestError(f"no placer hook installed beside {slurm_conf} ({state_path} is absent)")
    state = _state(state_path)
    _need_to_write(script, slurm_conf if "conf_line" in state else None)
    if exists(script) and _sha(_read_kept(script)) != state.get("installed_sha256") and not force:
        raise RequestError(f"{script} was changed since `placer hook install`: keeping it (--force removes it)")
    done = []
    if state.get("previous_script") is None:
        script.unlink(missing_ok=True)
        done.append(f"removed {script}")
    else:
        _write(script, state["previous_script"])
        done.append(f"restored the previous {script}")
    if "conf_line" in state:
        lines = _read_kept(slurm_conf).splitlines(keepends=True)
        keep = [line for line in lines if line.rstrip("\n") != state["conf_line"]] if state.get("previous_conf_line") \
            is None else [state["previous_conf_line"] + "\n" if line.rstrip("\n") == state["conf_line"] else line
                          for line in lines]
        _write(slurm_conf, "".join(keep), os.stat(slurm_conf).st_mode & 0o777)
        done.append("slurm.conf: JobSubmitPlugins as it was; restart slurmctld")
    state_path.unlink()
    return done


# the slurm table slurmctld gives the script, enough for job_submit.lua
DRIVER = """
slurm = {SUCCESS = 0, NO_VAL = 4294967294,
         log_info = function(fmt, ...) io.stderr:write(string.format(fmt, ...) .. "\\n") end}
dofile(arg[1])
local cjson = require("cjson")
local input = cjson.decode(io.read("*a"))
local rc
for _ = 1, (input["repeat"] or 1) do rc = slurm_job_submit(input.job, input.parts, 0) end
print(cjson.encode({rc = rc, job = input.job, fail_open = placer_fail_open}))
"""


def round_trip(script: Path, job: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """Run `script` on `job` as slurmctld would; returns the job after the hook and its log lines."""
    if not shutil.which("lua5.1"):
        raise BackendError("lua5.1 is absent (apt-get install -y lua5.1): cannot run the hook outside slurmctld")
    with tempfile.TemporaryDirectory() as d:
        driver = Path(d) / "driver.lua"
        driver.write_text(DRIVER)
        done = subprocess.run(["lua5.1", str(driver), str(script)], input=json.dumps({"job": job, "parts": parts}),
                              capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise BackendError(f"the hook failed in Lua: {done.stderr.strip()[-500:]}")
    out: dict[str, Any] = json.loads(done.stdout)
    out["log"] = done.stderr.strip().splitlines()
    return out
