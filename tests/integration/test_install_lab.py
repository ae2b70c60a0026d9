"""Issue 17 on the real lab: `placer hook install` with a site config, then `placer serve` started exactly as
its systemd unit starts it, give a submitted job the daemon's advice; `placer hook uninstall` puts the
lab's job_submit setting back byte for byte. CI runs it from its non-editable install (PLACER_INSTALLED,
the `placer` of a plain `pip install .`); elsewhere from this checkout."""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

from plugins.services import render
from topology.hostlists import expand

from .conftest import PLACER, LabHandle, running_nodes, wait_until


def _ask(sock: Path, req: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall((json.dumps(req) + "\n").encode())
        return json.loads(s.makefile("rb").readline())


def test_hook_install_and_the_units_serve_advise_a_job_and_uninstall_restores_it(lab: LabHandle, tmp_path: Path
                                                                                   ) -> None:
    installed = os.environ.get("PLACER_INSTALLED")
    placer = [installed] if installed else PLACER
    etc = lab.base / "etc"
    conf, script = etc / "slurm.conf", etc / "job_submit.lua"
    before = conf.read_bytes(), script.read_bytes()
    sock = lab.socket  # a chroot lab's slurmctld sees this directory only (bind-mounted at the same path)
    site = tmp_path / "placer.yaml"
    site.write_text(f"inventory: {lab.inventory}\nslurm_conf: {conf}\nbackend: slurm-cli\nsocket: {sock}\n"
                    f"refresh_s: 1\nhook_budget_s: 0.5\nmetrics_port: {19464 + int(lab.version[:2])}\n")
    lab.clean()
    done = lab.run(*placer, "hook", "install", "--config", str(site))
    assert f"wrote {script}" in done.stdout and f'local SOCKET_PATH = "{sock}"' in script.read_text()
    # the unit's own command line, with this install's placer
    unit = render("root", "root", "root", site, placer="PLACER")["placer-serve.service"]
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert exec_start is not None
    argv = shlex.split(exec_start.group(1))
    assert argv[0] == "PLACER"
    sock.parent.mkdir(mode=0o755, exist_ok=True)  # the unit's RuntimeDirectory=
    sock.unlink(missing_ok=True)
    log = (lab.base / "log" / "serve-unit.log").open("w")
    proc = subprocess.Popen([*placer, *argv[1:]], stdout=log, stderr=subprocess.STDOUT,
                            env={**lab.env, "PLACER_CONFIG": str(site)})
    try:
        wait_until("the daemon's socket", lambda: sock.exists() and proc.poll() is None, 60)
        wait_until("a refresh", lambda: _ask(sock, {"v": 1, "op": "state"})["state_time"] > 0, 30)
        job = lab.sbatch("-J", "site-hook", "-N", "2", "--exclusive", "--gres=gpu:8")
        chosen = {d["name"]: d for d in _ask(sock, {"v": 1, "op": "decisions"})["decisions"]}["site-hook"]
        assert chosen["action"] == "advise", chosen
        assert running_nodes(lab, job) == sorted(expand(chosen["req_nodes"]))
        check = lab.run(*placer, "hook", "check", "--config", str(site), check=False)
        assert check.returncode == 0 and "ok: the daemon answered the hook" in check.stdout, check.stdout + check.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            log.close()
    done = lab.run(*placer, "hook", "uninstall", "--config", str(site))
    assert (conf.read_bytes(), script.read_bytes()) == before
    time.sleep(0.1)
    lab.clean()
