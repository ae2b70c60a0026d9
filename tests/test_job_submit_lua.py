"""plugins/job_submit.lua on its own (Lua 5.1, Debian's lua-socket and lua-cjson; skipped, saying so,
without them): the hook applies an answer only when Slurm can run it. A well-formed but wrong answer
(a node of another cluster or partition, a node count of a million, a negative switch count, a
--nodelist overwritten) leaves the job unchanged and counts as a fail-open. The lab tests run the same
script inside real slurmctld."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.hook_install import DRIVER
from plugins.lab import LabOptions, hook_text

PARTS = {"gpu": {"name": "gpu", "nodes": "gpu[001-004]", "flag_default": 1},
         "other": {"name": "other", "nodes": "p[1-2]-n[01-02],x7", "flag_default": 0}}
NO_VAL = 4294967294


def _lua_ready() -> str | None:
    if shutil.which("lua5.1") is None:
        return "lua5.1 is absent: apt-get install -y lua5.1 lua-socket lua-cjson"
    probe = subprocess.run(["lua5.1", "-e", 'require("socket.unix"); require("cjson")'], capture_output=True)
    return "lua-socket or lua-cjson is absent: apt-get install -y lua-socket lua-cjson" if probe.returncode else None


@pytest.fixture
def hook(tmp_path: Path) -> Iterator:
    why = _lua_ready()
    if why:
        pytest.skip(why)
    sock = tmp_path / "placer.sock"
    script = tmp_path / "job_submit.lua"
    script.write_text(hook_text(LabOptions(socket_path=sock, hook_budget_s=2.0)))
    driver = tmp_path / "driver.lua"
    driver.write_text(DRIVER)
    answer: dict = {}
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock))
    srv.listen(4)
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            answer["accepts"] = answer.get("accepts", 0) + 1
            with conn, conn.makefile("rb") as lines:
                for line in lines:  # as the daemon does: line after line while the hook keeps the connection
                    answer["request"] = json.loads(line)
                    answer["requests"] = answer.get("requests", 0) + 1
                    conn.sendall(answer["line"].encode() + b"\n")
                    if not answer.get("keep", True):
                        break

    threading.Thread(target=serve, daemon=True).start()

    def submit(job: dict, reply: dict | str, parts: dict = PARTS, repeat: int = 1, keep: bool = True) -> dict:
        answer.update(line=reply if isinstance(reply, str) else json.dumps(reply), keep=keep, accepts=0, requests=0)
        done = subprocess.run(["lua5.1", str(driver), str(script)],
                              input=json.dumps({"job": job, "parts": parts, "repeat": repeat}),
                              capture_output=True, text=True, timeout=20, check=True)
        out = json.loads(done.stdout)
        out["log"] = done.stderr
        out.update(request=answer.get("request"), accepts=answer["accepts"], requests=answer["requests"])
        return out

    yield submit
    stop.set()
    srv.close()


JOB = {"name": "j", "min_nodes": 2, "max_nodes": 2}


def test_good_advice_is_applied(hook) -> None:
    out = hook(JOB, {"action": "advise", "req_nodes": "gpu[002-003]", "min_nodes": 2})
    assert out["job"]["req_nodes"] == "gpu[002-003]" and out["job"]["min_nodes"] == 2 and out["fail_open"] == 0
    out = hook({"name": "j", "tres_per_job": "gres/gpu:16"}, {"action": "advise", "req_nodes": "gpu[001-002]",
                                                             "min_nodes": 2})  # GPUs per job: nodes as needed
    assert out["job"]["req_nodes"] == "gpu[001-002]" and out["job"]["min_nodes"] == 2
    out = hook({"name": "j", "min_nodes": 4}, {"action": "advise", "req_switch": 2, "wait4switch": 300})
    assert out["job"]["req_switch"] == 2 and out["job"]["wait4switch"] == 300


def test_the_request_names_the_partition_and_every_gpu_request(hook) -> None:
    """The daemon keeps to the partition's nodes: the job's own, else the default (a job without -p runs
    there); GPUs per task and per socket are sent, so that placer can honour or leave them, never drop them."""
    job = {"name": "t", "tres_per_task": "gres:gpu:l40s:1", "num_tasks": 3, "tres_per_socket": "gres:gpu:1"}
    sent = hook(job, {"action": "none"})["request"]
    assert sent["partition"] == "gpu" and sent["tres_per_task"] == "gres:gpu:l40s:1" and sent["num_tasks"] == 3
    assert sent["tres_per_socket"] == "gres:gpu:1"
    assert hook({**job, "partition": "other"}, {"action": "none"})["request"]["partition"] == "other"


def test_the_request_says_whether_the_job_is_an_array_a_heterogeneous_component_or_in_a_reservation(hook) -> None:
    """Slurm gives a job that is neither array_inx nil and het_job_offset NO_VAL: nothing is sent; a
    reservation's name is sent as given."""
    sent = hook({**JOB, "het_job_offset": NO_VAL}, {"action": "none"})["request"]
    assert "array_inx" not in sent and "het_job_offset" not in sent
    sent = hook({**JOB, "array_inx": "0-3%2", "het_job_offset": NO_VAL}, {"action": "none"})["request"]
    assert sent["array_inx"] == "0-3%2" and "het_job_offset" not in sent
    assert hook({**JOB, "het_job_offset": 1}, {"action": "none"})["request"]["het_job_offset"] == 1
    assert "reservation" not in sent
    assert hook({**JOB, "reservation": "maint"}, {"action": "none"})["request"]["reservation"] == "maint"
    assert "req_switch" not in sent and hook({**JOB, "req_switch": 2}, {"action": "none"})["request"]["req_switch"] == 2


def test_advice_never_replaces_the_jobs_own_switches(hook) -> None:
    """A daemon that answered --switches for a job with its own (`--switches=1`) is not obeyed."""
    out = hook({"name": "j", "min_nodes": 4, "req_switch": 1}, {"action": "advise", "req_switch": 2, "wait4switch": 300})
    assert out["job"]["req_switch"] == 1 and out["fail_open"] == 1, out
    assert "advice not applied: it would replace the job's own --switches" in out["log"]
    out = hook({"name": "j", "min_nodes": 4, "req_switch": NO_VAL}, {"action": "advise", "req_switch": 2})
    assert out["job"]["req_switch"] == 2, out


def test_one_connection_is_kept_and_a_closed_one_is_replaced(hook) -> None:
    """slurmctld waits for the answer holding its job lock: the hook keeps its connection between submits
    (no connect, no new daemon thread each time) and, when the daemon closed it (a restart), opens a new
    one within the same budget, so the job still gets its answer."""
    out = hook({"name": "k"}, {"action": "none"}, repeat=3)
    assert (out["accepts"], out["requests"], out["fail_open"]) == (1, 3, 0)
    out = hook({"name": "k"}, {"action": "none"}, repeat=3, keep=False)  # the daemon closes after each answer
    assert (out["accepts"], out["requests"], out["fail_open"]) == (3, 3, 0)


@pytest.mark.parametrize("job,reply,why", [
    (JOB, {"action": "advise", "req_nodes": "nosuchnode,gpu001", "min_nodes": 2}, "node nosuchnode is not in"),
    ({**JOB, "partition": "other"}, {"action": "advise", "req_nodes": "gpu[001-002]", "min_nodes": 2},
     "not in the job's partition"),
    (JOB, {"action": "advise", "req_nodes": "gpu[001-002]", "min_nodes": 1000000}, "min_nodes 1000000 is not the 2"),
    (JOB, {"action": "advise", "req_nodes": "gpu[001-002]", "min_nodes": 1}, "min_nodes 1 is not the 2"),
    (JOB, {"action": "advise", "req_nodes": "gpu[001-003]", "min_nodes": 3}, "3 advised node(s) do not fit"),
    # no -N: found by the adversarial lab run, where 4 nodes for `--gpus=l40s:1` made sbatch fail
    ({"name": "j", "tres_per_job": "gres:gpu:l40s:1"}, {"action": "advise", "req_nodes": "gpu[001-004]",
                                                        "min_nodes": 4}, "do not fit the job's node count (1..1)"),
    ({"name": "j", "tres_per_node": "gres:gpu:4"}, {"action": "advise", "req_nodes": "gpu[001-002]", "min_nodes": 2},
     "do not fit the job's node count (1..1)"),
    (JOB, {"action": "advise", "req_nodes": "gpu[001-002]"}, "min_nodes nil"),
    (JOB, {"action": "advise", "req_nodes": "gpu001; rm -rf /", "min_nodes": 2}, "not a host list"),
    (JOB, {"action": "advise", "req_switch": -1}, "req_switch -1"),
    (JOB, {"action": "advise", "req_switch": 3}, "req_switch 3 is not 1..2"),
    (JOB, {"action": "advise", "req_switch": 1.5}, "req_switch 1.5"),
    (JOB, {"action": "advise", "req_switch": 1, "wait4switch": 10 ** 9}, "wait4switch"),
    ({**JOB, "req_nodes": "gpu004"}, {"action": "advise", "req_nodes": "gpu[001-002]", "min_nodes": 2},
     "replace the job's own --nodelist"),
    (JOB, {"action": "cancel"}, "unknown action cancel"),
    (JOB, "[1, 2]", "garbled answer"),
])
def test_wrong_answers_leave_the_job_unchanged(hook, job: dict, reply, why: str) -> None:
    out = hook(job, reply)
    assert out["job"] == job and out["rc"] == 0 and out["fail_open"] == 1
    assert why in out["log"], out["log"]


def test_partition_lists_with_several_ranges(hook) -> None:
    job = {**JOB, "partition": "other"}
    out = hook(job, {"action": "advise", "req_nodes": "p2-n[01-02]", "min_nodes": 2})
    assert out["job"]["req_nodes"] == "p2-n[01-02]"
    out = hook(job, {"action": "advise", "req_nodes": "p3-n01,x7", "min_nodes": 2})
    assert "node p3-n01 is not in" in out["log"] and "req_nodes" not in out["job"]


def test_an_unreadable_or_huge_partition_list_is_not_trusted(hook) -> None:
    huge = {"gpu": {"name": "gpu", "nodes": "n[1-9999999]", "flag_default": 1}}
    out = hook(JOB, {"action": "advise", "req_nodes": "n[1-2]", "min_nodes": 2}, parts=huge)
    assert "req_nodes" not in out["job"] and "partition's nodes cannot be read" in out["log"]
    out = hook(JOB, {"action": "advise", "req_nodes": "n[1-2]", "min_nodes": 2}, parts={})
    assert "req_nodes" not in out["job"] and out["fail_open"] == 1


def test_steer_holds_and_tags_where_users_cannot_write(hook) -> None:
    out = hook({"name": "j", "comment": "mine"}, {"action": "steer", "reason": "held"})
    assert out["job"]["priority"] == 0 and out["job"]["admin_comment"] == "placer:steer"
    assert out["job"]["comment"] == "mine"  # the user's field is left alone
    user_held = {"name": "j", "priority": 0}  # sbatch -H: the user's own hold
    out = hook(user_held, {"action": "steer", "reason": "held"})
    assert out["job"] == user_held and "held by its user at submit; not steered" in out["log"]


def test_a_hung_daemon_costs_one_budget_then_the_hook_backs_off(tmp_path: Path) -> None:
    """Submits queue behind slurmctld's job lock: after one timeout the hook stops asking for BACKOFF_S,
    so a hung daemon costs one budget per second, not one per submit."""
    why = _lua_ready()
    if why:
        pytest.skip(why)
    sock = tmp_path / "placer.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock))
    srv.listen(64)  # accepts connections (the kernel does) and never answers: a hung daemon
    script = tmp_path / "job_submit.lua"
    script.write_text(hook_text(LabOptions(socket_path=sock, hook_budget_s=0.1, hook_backoff_s=0.5)))
    driver = tmp_path / "driver.lua"
    driver.write_text(DRIVER.replace("local input = cjson.decode(io.read(\"*a\"))", "local input = {job = {name = 'j'}, parts = {}}")
                      .replace('local rc\nfor _ = 1, (input["repeat"] or 1) do rc = slurm_job_submit(input.job, input.parts, 0) end',
                               "local t = {}\nfor i = 1, 4 do\n  local t0 = socket.gettime()\n"
                               "  slurm_job_submit({name = 'j' .. i}, {}, 0)\n  t[i] = socket.gettime() - t0\n"
                               "  if i == 3 then os.execute('sleep 0.6') end\nend\nlocal rc = t"))
    try:
        done = subprocess.run(["lua5.1", "-e", 'socket = require("socket")', str(driver), str(script)],
                              capture_output=True, text=True, timeout=20, check=True)
    finally:
        srv.close()
    took = json.loads(done.stdout)["rc"]
    assert took[0] >= 0.09 and took[1] < 0.05 and took[2] < 0.05 and took[3] >= 0.09, took
    assert "j1 goes in unchanged (fail-open): no answer within 0.1 s" in done.stderr
    assert "j2 goes in unchanged (fail-open): placer did not answer a recent request in time" in done.stderr
    assert "j4 goes in unchanged (fail-open): no answer within 0.1 s" in done.stderr  # asked again after 0.5 s


def test_the_request_carries_the_cpus_the_job_needs_on_each_node(hook) -> None:
    """The daemon keeps a job off nodes with too few CPUs left (plugins/cpus.py): the hook sends job_desc's
    CPU fields, the 16-bit ones as Slurm gives them (65534: not given)."""
    job = {"name": "c", "tres_per_node": "gres/gpu:1", "min_cpus": 8, "pn_min_cpus": 65534, "cpus_per_task": 8,
           "ntasks_per_node": 65534, "cpus_per_tres": "gres/gpu:4"}
    sent = hook(job, {"action": "none"})["request"]
    assert (sent["min_cpus"], sent["pn_min_cpus"], sent["cpus_per_task"], sent["ntasks_per_node"]) == (8, 65534, 8, 65534)
    assert sent["cpus_per_tres"] == "gres/gpu:4"
    assert "min_cpus" not in hook({"name": "n", "min_cpus": 4294967294}, {"action": "none"})["request"]
