"""Installing placer on a cluster, without Slurm: the site config, `placer hook install/uninstall` (undone
byte for byte), the systemd units (`systemd-analyze verify`), and the Grafana dashboard against the
metrics the daemon really exports."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cli.config import load_config
from cli.main import main
from plugins.services import UNITS, render, verify
from topology import RequestError

from .test_serve_unit import daemon

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "examples" / "grafana-placer.json"


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return rc, out, err


# -- the site configuration ---------------------------------------------------------------------------------
def test_the_example_config_is_valid_and_complete() -> None:
    from cli.config import KEYS

    site = load_config(str(ROOT / "examples" / "placer.yaml"))
    assert site.inventory and site.serve.mode == "advise" and site.hook_budget_s == 0.05
    text = (ROOT / "examples" / "placer.yaml").read_text()
    assert all(re.search(rf"^#? ?{k}:", text, re.M) for k in KEYS), "every key is documented in the example"


def test_every_bad_key_at_once(tmp_path: Path) -> None:
    f = tmp_path / "placer.yaml"
    f.write_text("inventory: ''\nmode: sideways\nbackend: magic\nhook_budget_s: 100\nslurm_conf: rel/slurm.conf\n"
                 "nope: 1\napply_interval_s: -1\n")
    with pytest.raises(RequestError) as err:
        load_config(str(f))
    assert len(err.value.problems) == 7
    text = err.value.render()
    for key in ("inventory", "mode", "backend", "hook_budget_s", "slurm_conf", "nope", "apply_interval_s"):
        assert f"{key}:" in text


def test_where_the_config_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    f = tmp_path / "site.yaml"
    f.write_text("mode: steer\ninventory: preset:tiny\n")
    monkeypatch.setenv("PLACER_CONFIG", str(f))
    assert load_config(None).serve.mode == "steer"  # the environment names it
    g = tmp_path / "other.yaml"
    g.write_text("mode: advise\n")
    assert load_config(str(g)).serve.mode == "advise"  # the flag wins over the environment
    monkeypatch.setenv("PLACER_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(RequestError, match="does not exist"):
        load_config(None)  # a file that was named must exist
    monkeypatch.delenv("PLACER_CONFIG")
    rc, _, err = run(capsys, "apply", "--once", "--config", str(g))
    assert rc == 2 and "no inventory: give --inventory, or `inventory:` in" in err


@pytest.mark.parametrize("config, flags, want", [
    ("", [], ("cpsat", 0.003, 0.05)), ("apply_solver: greedy\n", [], ("greedy", 0.003, 0.05)),
    ("apply_solver: greedy\n", ["--solver", "cpsat"], ("cpsat", 0.003, 0.05)),
    ("apply_work_limit: 0.01\napply_time_limit_s: 0.2\n", [], ("cpsat", 0.01, 0.2)),
    ("apply_work_limit: 0\n", ["--time-limit-s", "0.1"], ("cpsat", None, 0.1)),
    ("", ["--solver", "greedy"], ("greedy", 0.003, 0.05))])
def test_apply_chooses_with_cpsat_by_work_unless_told(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      config: str, flags: list[str],
                                                      want: tuple[str, float | None, float]) -> None:
    """The scheduler's chooser: CP-SAT within its work limit by default (issue 18 point 6, as simulate's
    policy placer); the flag wins over the config; work limit 0 leaves only the wall clock."""
    import cli.serve_cmds as serve_cmds
    from placer import PlannerConfig
    from plugins.apply import ApplyReport

    seen = []

    def loop(fabric: object, be: object, planner: PlannerConfig, *a: object) -> ApplyReport:
        seen.append(planner)
        return ApplyReport()

    monkeypatch.setattr(serve_cmds, "choose_backend", lambda *a: object())
    monkeypatch.setattr(serve_cmds, "report_pass", lambda *a: None)
    monkeypatch.setattr(serve_cmds, "apply_loop", loop)
    f = tmp_path / "placer.yaml"
    f.write_text("inventory: preset:tiny\n" + config)
    rc, _, err = run(capsys, "apply", "--once", "--config", str(f), *flags)
    assert rc == 0, err
    assert [(p.solver, p.cpsat_work_limit, p.time_limit_s) for p in seen] == [want]
    f.write_text("inventory: preset:tiny\napply_solver: exact\n")
    rc, _, err = run(capsys, "apply", "--once", "--config", str(f))
    assert rc == 2 and "apply_solver: expected greedy or cpsat" in err


def test_apply_keeps_its_hold_clock_where_the_config_or_the_flag_says(capsys, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`apply_state_file` / `--state-file` (the flag wins); a state file it cannot read stops apply before
    any pass (exit 2, the file named, left as it was)."""
    import cli.serve_cmds as serve_cmds
    from plugins.apply import ApplyReport

    monkeypatch.setattr(serve_cmds, "choose_backend", lambda *a: object())
    monkeypatch.setattr(serve_cmds, "report_pass", lambda *a: None)
    broken = tmp_path / "state.json"
    broken.write_text("{not json")
    f = tmp_path / "placer.yaml"
    f.write_text(f"inventory: preset:tiny\napply_state_file: {broken}\n")
    rc, _, err = run(capsys, "apply", "--once", "--config", str(f))
    assert rc == 2 and f"{broken}" in err and "not valid JSON" in err, err
    assert broken.read_text() == "{not json" and not (tmp_path / "state.json.lock").exists()
    seen = []

    def loop(*a: object) -> ApplyReport:
        seen.append(a[-1])
        return ApplyReport()

    monkeypatch.setattr(serve_cmds, "apply_loop", loop)
    rc, _, err = run(capsys, "apply", "--once", "--config", str(f), "--state-file", str(tmp_path / "other.json"))
    assert rc == 0 and seen == [tmp_path / "other.json"], err
    f.write_text("inventory: preset:tiny\napply_state_file: state.json\n")
    rc, _, err = run(capsys, "apply", "--once", "--config", str(f))
    assert rc == 2 and "apply_state_file: expected an absolute path" in err, err


def test_serve_reads_applys_state_file_where_the_config_or_the_flag_says(capsys, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon reads the file apply keeps (`apply_state_file`, or `--apply-state-file`, which wins, as the
    placer-serve unit passes it); neither: it keeps its own clock only."""
    import cli.serve_cmds as serve_cmds

    seen = []
    monkeypatch.setattr(serve_cmds, "choose_backend", lambda *a: object())
    monkeypatch.setattr(serve_cmds, "ProcessRefresher", lambda *a: type("W", (), {"close": lambda self: None})())
    monkeypatch.setattr(serve_cmds, "serve", lambda d: seen.append(d.cfg.apply_state_file))
    f = tmp_path / "placer.yaml"
    for config, flags, want in (("", [], None), (f"apply_state_file: {tmp_path}/a.json\n", [], tmp_path / "a.json"),
                                (f"apply_state_file: {tmp_path}/a.json\n", ["--apply-state-file", "/var/b.json"],
                                 Path("/var/b.json"))):
        f.write_text("inventory: preset:tiny\n" + config)
        rc, _, err = run(capsys, "serve", "--config", str(f), *flags)
        assert rc == 0 and seen[-1] == want, err


# -- the hook ------------------------------------------------------------------------------------------------
CONF = "ClusterName=c\nSlurmUser=root\n# JobSubmitPlugins=lua is what we need\nSelectType=select/cons_tres\n"


@pytest.mark.parametrize("conf,old_script", [
    (CONF, None),
    (CONF + "JobSubmitPlugins=require_timelimit   # site policy\n", "-- the site's own script\n"),
    (CONF.replace("ClusterName=c\n", "ClusterName=c\nJobSubmitPlugins=lua\n"), None),
    (CONF + "# r\u00e9seau: Ren\u00e9\n", "-- auteur: Ren\u00e9\nfunction slurm_job_submit() return 0 end\n"),
], ids=["no-line-no-script", "another-plugin-and-a-script", "lua-already-named", "latin-1-conf-and-script"])
def test_install_then_uninstall_restores_everything_exactly(capsys, tmp_path: Path, conf: str,
                                                             old_script: str | None) -> None:
    """Byte for byte, files in Latin-1 too (Slurm reads bytes; a site's comment may be in any encoding:
    before 2026-12-07 such a script was a UnicodeDecodeError traceback)."""
    slurm_conf = tmp_path / "slurm.conf"
    slurm_conf.write_bytes(conf.encode("latin-1"))
    script = tmp_path / "job_submit.lua"
    if old_script is not None:
        script.write_bytes(old_script.encode("latin-1"))
    old = script.read_bytes() if old_script is not None else None
    site = tmp_path / "placer.yaml"
    site.write_text(f"socket: {tmp_path}/p.sock\nhook_budget_s: 0.08\nslurm_conf: {slurm_conf}\n")
    rc, out, _ = run(capsys, "hook", "install", "--config", str(site), "--dry-run", "--edit-slurm-conf")
    assert slurm_conf.read_bytes() == conf.encode("latin-1") and (script.read_bytes() if script.exists() else None) == old
    rc, out, err = run(capsys, "hook", "install", "--config", str(site), "--edit-slurm-conf")
    assert f'local SOCKET_PATH = "{tmp_path}/p.sock"' in script.read_text()
    assert "local BUDGET_S = 0.08" in script.read_text()
    plugins = re.findall(r"^JobSubmitPlugins=(\S+)", slurm_conf.read_bytes().decode("latin-1"), re.M)
    assert len(plugins) == 1 and "lua" in plugins[0].split(",")
    assert run(capsys, "hook", "install", "--config", str(site), "--edit-slurm-conf")[0] in (0, 2)  # again: no harm
    rc, out, _ = run(capsys, "hook", "uninstall", "--config", str(site))
    assert rc == 0
    assert slurm_conf.read_bytes() == conf.encode("latin-1")
    assert (script.read_bytes() if script.exists() else None) == old
    assert not (tmp_path / "job_submit.lua.placer.json").exists()


def test_install_edits_a_symlinked_slurm_conf_where_it_is(capsys, tmp_path: Path) -> None:
    """/etc/slurm/slurm.conf linked to a shared copy (config management, NFS): the shared file is edited and
    put back, the link kept (a rename over the link made it a file the other nodes no longer see)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "slurm.conf").write_text(CONF)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "slurm.conf").symlink_to(shared / "slurm.conf")
    rc, _, err = run(capsys, "hook", "install", "--slurm-conf", str(etc / "slurm.conf"), "--edit-slurm-conf")
    assert (etc / "slurm.conf").is_symlink() and "JobSubmitPlugins=lua" in (shared / "slurm.conf").read_text(), err
    rc, _, err = run(capsys, "hook", "uninstall", "--slurm-conf", str(etc / "slurm.conf"))
    assert rc == 0 and (etc / "slurm.conf").is_symlink() and (shared / "slurm.conf").read_text() == CONF, err
    assert sorted(p.name for p in shared.iterdir()) == ["slurm.conf"]


def test_install_says_what_is_left_to_do_and_uninstall_keeps_an_edited_script(capsys, tmp_path: Path) -> None:
    (tmp_path / "slurm.conf").write_text(CONF)
    rc, out, err = run(capsys, "hook", "install", "--slurm-conf", str(tmp_path / "slurm.conf"))
    assert "to do: slurm.conf: add 'JobSubmitPlugins=lua'" in out and "restart slurmctld" in out
    (tmp_path / "job_submit.lua").write_text("-- edited by hand\n")
    rc, _, err = run(capsys, "hook", "uninstall", "--slurm-conf", str(tmp_path / "slurm.conf"))
    assert rc == 2 and "was changed since" in err and (tmp_path / "job_submit.lua").exists()
    rc, _, _ = run(capsys, "hook", "uninstall", "--slurm-conf", str(tmp_path / "slurm.conf"), "--force")
    assert rc == 0 and not (tmp_path / "job_submit.lua").exists()
    rc, _, err = run(capsys, "hook", "uninstall", "--slurm-conf", str(tmp_path / "slurm.conf"))
    assert rc == 2 and "no placer hook installed" in err


def test_install_refuses_a_missing_slurm_conf_and_names_an_unreachable_socket(capsys, tmp_path: Path) -> None:
    rc, _, err = run(capsys, "hook", "install", "--slurm-conf", str(tmp_path / "absent.conf"))
    assert rc == 2 and "does not exist" in err
    (tmp_path / "slurm.conf").write_text(CONF.replace("SlurmUser=root", "SlurmUser=nobody"))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    (tmp_path / "site.yaml").write_text(f"socket: {locked}/p.sock\n")
    rc, _, err = run(capsys, "hook", "install", "--config", str(tmp_path / "site.yaml"), "--slurm-conf",
                     str(tmp_path / "slurm.conf"), "--dry-run")
    assert rc == 2 and "SlurmUser nobody cannot reach" in err


# -- services --------------------------------------------------------------------------------------------------
def test_units_render_and_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is absent (apt-get install -y systemd)")
    units = render("placer", "slurm", "slurm", Path("/etc/placer/placer.yaml"), placer=shutil.which("true"))
    paths = []
    for name, text in units.items():
        assert not re.search(r"@[A-Z_]+@", text), "a placeholder left in the unit"
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    assert sorted(units) == sorted(UNITS)
    assert verify(paths) is None
    serve = units["placer-serve.service"]
    for line in ("User=placer", "Group=slurm", "ProtectSystem=strict", "Restart=on-failure",
                 "After=network-online.target munge.service slurmctld.service", "RuntimeDirectory=placer"):
        assert line in serve


# -- the dashboard ---------------------------------------------------------------------------------------------
def test_every_metric_the_dashboard_queries_is_exported() -> None:
    from prometheus_client import generate_latest

    d, _ = daemon()
    d.decide({"v": 1, "name": "a", "tres_per_job": "gres:gpu:1"})  # so labelled series exist
    page = generate_latest(d.metrics.registry).decode()
    exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", page, re.M))
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    queried = {m for e in exprs for m in re.findall(r"\b(placer_[a-z_]+)", e)}
    missing = queried - exported
    assert not missing, f"the dashboard queries metrics the daemon does not export: {missing}"
    for want in ("placer_decisions_total", "placer_decision_seconds_bucket", "placer_fail_open_total",
                 "placer_state_age_seconds", "placer_held_jobs"):
        assert want in queried


def test_no_slurm_conf_is_said_plainly_not_as_dns_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import plugins.slurm_cli as cli_backend
    from topology import BackendError

    monkeypatch.delenv("SLURM_CONF", raising=False)
    monkeypatch.setattr(cli_backend, "DEFAULT_SLURM_CONF", str(tmp_path / "absent.conf"))
    with pytest.raises(BackendError, match="no slurm.conf: .* give --slurm-conf, SLURM_CONF or slurm_conf"):
        cli_backend.subprocess_runner(None)(["false"])
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "given.conf"))
    with pytest.raises(BackendError) as err:
        cli_backend.subprocess_runner(None)(["false"])
    assert "no slurm.conf" not in str(err.value)


def test_service_install_writes_both_units_for_this_install(capsys, tmp_path: Path) -> None:
    rc, out, _ = run(capsys, "service", "install", "--unit-dir", str(tmp_path), "--user", "placer-test",
                     "--apply-user", "root", "--group", "root")
    assert rc == 0
    serve = (tmp_path / "placer-serve.service").read_text()
    assert "User=placer-test" in serve and "Group=root" in serve
    assert "to do: useradd --system --gid root --no-create-home --shell /usr/sbin/nologin placer-test" in out
    exec_start = re.search(r"^ExecStart=(\S+) serve --config /etc/placer/placer.yaml "
                           r"--apply-state-file /var/lib/placer/apply-state.json$", serve, re.M)
    assert exec_start and Path(exec_start.group(1)).name == "placer"
    assert "User=root" in (tmp_path / "placer-apply.service").read_text()
    assert "systemctl daemon-reload" in out and "replaced" not in out
    args = ("service", "install", "--unit-dir", str(tmp_path), "--user", "placer-test", "--apply-user", "root",
            "--group", "root")
    rc, out, _ = run(capsys, *args)
    assert rc == 0 and "replaced" not in out  # the same units again: nothing to say
    (tmp_path / "placer-apply.service").write_text(serve.replace("Restart=on-failure", "Restart=always"))
    rc, out, _ = run(capsys, *args)
    assert f"replaced {tmp_path / 'placer-apply.service'}, which differed" in out and "systemctl edit" in out
    assert "placer-serve.service, which differed" not in out
    rc, out, _ = run(capsys, "service", "install", "--dry-run", "--unit-dir", str(tmp_path / "absent"))
    assert rc == 0 and "[Service]" in out
    rc, _, err = run(capsys, "service", "install", "--unit-dir", str(tmp_path / "absent"))
    assert rc == 2 and "does not exist" in err


def test_a_placer_the_units_users_cannot_reach_is_named() -> None:
    import tempfile

    from plugins.services import unreachable

    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:  # pytest's own tmp_path sits in a 0700 directory
        base = Path(d)
        base.chmod(0o755)
        locked = base / "home"
        locked.mkdir(mode=0o700)
        (locked / "python3").write_text("")
        script = base / "placer"
        script.write_text(f"#!{locked / 'python3'}\nprint()\n")
        assert unreachable(str(script)) == locked
    assert unreachable("/usr/bin/env") is None


def test_small_jobs_by_end_is_a_boolean(tmp_path: Path) -> None:
    f = tmp_path / "placer.yaml"
    f.write_text("small_jobs_by_end: true\n")
    assert load_config(str(f)).small_jobs_by_end is True
    f.write_text("small_jobs_by_end: 1\n")
    with pytest.raises(RequestError) as err:
        load_config(str(f))
    assert "small_jobs_by_end" in err.value.render()


def test_hold_from_room_is_a_boolean_and_reaches_the_hold_rule(tmp_path: Path) -> None:
    f = tmp_path / "placer.yaml"
    f.write_text("hold_from_room: false\nhold_s: 600\n")
    site = load_config(str(f))
    assert site.hold().from_room is False and site.hold().hold_s == 600 and site.hold(60).hold_s == 60
    assert load_config(None).hold().from_room is True  # the default since 2026-12-05
    f.write_text("hold_from_room: yes please\n")
    with pytest.raises(RequestError) as err:
        load_config(str(f))
    assert "hold_from_room" in err.value.render()


def test_hold_idle_s_is_a_duration_and_reaches_the_hold_rule(tmp_path: Path) -> None:
    f = tmp_path / "placer.yaml"
    f.write_text("hold_idle_s: 600\n")
    assert load_config(str(f)).hold().idle_s == 600 and load_config(None).hold().idle_s == 1800
    f.write_text("hold_idle_share: 0.1\n")
    assert load_config(str(f)).hold().idle_floor(36000) == 3600 and load_config(None).hold().idle_floor(None) == 1800
    for bad in ("-5", "forever", str(40 * 86400)):
        f.write_text(f"hold_idle_s: {bad}\n")
        with pytest.raises(RequestError) as err:
            load_config(str(f))
        assert "hold_idle_s" in err.value.render(), bad
