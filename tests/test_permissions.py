"""Files a user may not read or write: a clear message naming the file, exit 2, nothing half-written, never
a traceback. Seen on 2026-12-07 as a user other than root: `-o /etc/slurm/topology.conf`, `--config` in a
0700 directory, `placer service install`, `placer hook install` and `simulate --plot` each ended in a
PermissionError traceback ("internal error"). Root, which runs the tests, may read and write anything, so the real check
runs placer as `nobody` (skipped where it cannot), and the rest puts the error in its place."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from cli.files import write_output
from cli.main import main
from topology import InventoryError, RequestError
from topology.inputs import exists

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _as_nobody_possible() -> str | None:
    """Why placer cannot run as `nobody` here (None: it can)."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "needs root and runuser"
    if not SYSTEM_PYTHON.exists():
        return "needs /usr/bin/python3"
    same = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
                          capture_output=True, text=True).stdout.strip()
    if same != str(tuple(sys.version_info[:2])):
        return f"/usr/bin/python3 is {same}, the venv's {tuple(sys.version_info[:2])}"
    for d in [ROOT, *ROOT.parents, Path(sysconfig.get_paths()["purelib"])]:
        if not os.stat(d).st_mode & 0o001:
            return f"{d} cannot be entered by other users"
    return None


@pytest.fixture
def as_nobody(tmp_path_factory: pytest.TempPathFactory):
    why = _as_nobody_possible()
    if why:
        pytest.skip(why)
    base = Path("/tmp") / f"placer-perm-{os.getpid()}"
    (base / "locked").mkdir(parents=True)
    (base / "readonly").mkdir()
    (base / "locked" / "placer.yaml").write_text("inventory: preset:tiny\n")
    (base / "readonly" / "slurm.conf").write_text("ClusterName=c\nSlurmUser=root\nSelectType=select/cons_tres\n")
    os.chmod(base, 0o755)
    os.chmod(base / "locked", 0o700)  # root's own: nobody may not enter it
    os.chmod(base / "readonly", 0o755)  # nobody may read, not write
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "PLACER_CONFIG": "",
           "PYTHONPATH": f"{ROOT}:{sysconfig.get_paths()['purelib']}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(shutil.which("runuser")), "-u", "nobody", "--", str(SYSTEM_PYTHON), "-m", "cli.main", *args],
                              capture_output=True, text=True, env=env, cwd=base, timeout=120)

    yield base, run
    shutil.rmtree(base)


def test_files_nobody_may_touch_are_said_not_a_traceback(as_nobody) -> None:
    base, run = as_nobody
    locked, readonly = base / "locked", base / "readonly"
    cases = [
        (["topology", "export", "preset:tiny", "--format", "slurm-tree", "--slurm-version", "22.05",
          "-o", str(readonly / "topology.conf")], "cannot write file: Permission denied"),
        (["plan", "--inventory", "preset:tiny", "--jobs", str(ROOT / "examples" / "jobs-example.yaml"),
          "-o", str(locked / "plan.json")], "cannot write file: Permission denied"),
        (["status", "--config", str(locked / "placer.yaml")], "cannot read file: Permission denied"),
        (["apply", "--once", "--inventory", "preset:tiny", "--state-file", str(locked / "s.json")],
         "cannot read file: Permission denied"),
        (["service", "install", "--unit-dir", str(readonly)], "cannot write into"),
        (["hook", "install", "--slurm-conf", str(readonly / "slurm.conf")], "cannot write"),
        (["hook", "install", "--slurm-conf", str(locked / "slurm.conf")], "cannot read file: Permission denied"),
        (["simulate", "--inventory", "preset:tiny", "--trace", str(readonly / "slurm.conf"), "--plot",
          str(readonly / "plots")], "nothing was run"),
    ]
    for args, said in cases:
        done = run(*args)
        assert done.returncode == 2 and said in done.stderr, (args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, (args, done.stderr)
    assert sorted(p.name for p in readonly.iterdir()) == ["slurm.conf"]  # nothing written, no temp files
    assert sorted(p.name for p in locked.iterdir()) == ["placer.yaml"]


def test_a_path_behind_a_directory_that_cannot_be_entered_exists(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`Path.exists` raises PermissionError there; `exists` says yes, and reading the file says why (a
    False would silently skip a site's config)."""
    behind = tmp_path / "locked" / "placer.yaml"
    real = Path.exists

    def denied(self: Path, *a: object, **kw: object) -> bool:
        if self == behind:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "exists", denied)
    assert exists(behind) and not exists(tmp_path / "absent")


def test_an_output_that_cannot_be_written_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli.files as files

    target = tmp_path / "topology.conf"
    target.write_text("old\n")

    def full(*a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "write_atomic", full)
    with pytest.raises(InventoryError) as err:
        write_output(str(target), "new\n")
    assert "cannot write file: No space left on device" in err.value.render()
    assert target.read_text() == "old\n"


def test_a_permission_error_no_check_caught_is_exit_2_naming_the_file(capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import cli.main as cli_main

    def denied(*a: object, **kw: object) -> None:
        raise PermissionError(13, "Permission denied", "/etc/slurm/topology.conf")

    monkeypatch.setattr(cli_main.cli, "main", denied)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "placer: error: /etc/slurm/topology.conf: Permission denied (as user" in err and "Traceback" not in err


def test_a_hook_state_file_that_is_not_installs_is_refused(tmp_path: Path) -> None:
    from plugins.hook_install import uninstall

    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=c\n")
    for text, said in (("{broken", "not valid JSON"), ('{"conf_line": 5}', "not what `placer hook install` writes")):
        (tmp_path / "job_submit.lua.placer.json").write_text(text)
        with pytest.raises(RequestError) as err:
            uninstall(conf)
        assert said in err.value.render(), err.value.render()
    assert conf.read_text() == "ClusterName=c\n"


def test_a_long_run_is_refused_before_it_starts_when_its_output_could_not_be_written(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`placer simulate --out/--plot` (and a sweep's plots in the current directory): checked before the
    replay, not after an hour of it."""
    import cli.simulate_cmd as simulate_cmd

    def never(*a: object, **kw: object) -> None:
        raise AssertionError("the replay ran")

    monkeypatch.setattr(simulate_cmd, "_replay_all", never)
    monkeypatch.setattr(simulate_cmd, "run_sweep", never)
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time,duration,gpus\nj1,0,10,16\n")
    base = ["simulate", "--inventory", "preset:tiny", "--trace", str(trace)]
    rc = main([*base, "--out", str(tmp_path / "absent" / "r.json")])
    assert rc == 2 and "does not exist; nothing was run" in capsys.readouterr().err
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real(p, mode))
    for extra in (["--plot", str(tmp_path / "plots" / "new")], ["--out", str(tmp_path / "r.json")]):
        rc = main([*base, *extra])
        err = capsys.readouterr().err
        assert rc == 2 and f"cannot write into {tmp_path} (as this user); nothing was run" in err, err
    monkeypatch.chdir(tmp_path)
    rc = main([*base, "--sweep"])
    assert rc == 2 and "nothing was run" in capsys.readouterr().err


def test_an_output_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    """A slurm.conf or topology.conf kept in a shared directory and linked from /etc/slurm: the file it points
    at is replaced, the link stays (a rename over the link made it a file of its own, which the other nodes
    no longer see)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "topology.conf").write_text("old\n")
    link = tmp_path / "topology.conf"
    link.symlink_to(shared / "topology.conf")
    write_output(str(link), "new\n")
    assert link.is_symlink() and (shared / "topology.conf").read_text() == "new\n"
    assert sorted(p.name for p in shared.iterdir()) == ["topology.conf"]


def test_an_output_that_is_not_a_regular_file_is_written_in_place(tmp_path: Path) -> None:
    """`-o /dev/stdout`, a named pipe: written, never renamed over. Seen as root on 2026-12-07: `-o /dev/full`
    replaced the device with a regular file (and `-o /dev/stdout` would have replaced the link)."""
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_output(str(fifo), "through the pipe\n")
    reader.join(10)
    assert got == ["through the pipe\n"] and fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_serve_leaves_an_existing_directory_alone_and_removes_only_a_stale_socket(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`placer serve --socket /tmp/p.sock` as root made /tmp mode 0750 root:slurm, and a socket path naming a
    file (`/etc/slurm/slurm.conf`) deleted that file (before 2026-12-07). Its own directory, made when
    missing, is 0750 in the socket's group (as root); a stale socket of its own is cleared; an existing
    directory the socket's group cannot enter is left as it is, with a warning."""
    import socket
    import stat

    from plugins.serve import _prepare_socket

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    _prepare_socket(shared / "p.sock", "root")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    conf = shared / "slurm.conf"
    conf.write_text("ClusterName=c\n")
    with pytest.raises(RequestError, match="not a socket"):
        _prepare_socket(conf, "root")
    assert conf.read_text() == "ClusterName=c\n"
    stale = shared / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # nobody listens
    _prepare_socket(stale, "root")
    assert not stale.exists()
    if os.geteuid() == 0:  # (giving a directory to another group needs root)
        closed = tmp_path / "closed"
        closed.mkdir(mode=0o700)
        closed.chmod(0o700)
        os.chown(closed, 0, 12345)  # a group that is not the socket's
        with caplog.at_level("WARNING"):
            _prepare_socket(closed / "p.sock", "root")
        assert "group root cannot enter it" in caplog.text and stat.S_IMODE(closed.stat().st_mode) == 0o700
    _prepare_socket(tmp_path / "own" / "p.sock", "root")
    assert (tmp_path / "own").is_dir()
    if os.geteuid() == 0:
        assert stat.S_IMODE((tmp_path / "own").stat().st_mode) == 0o750


def test_need_writable_checks_where_the_write_really_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe or device is written in place (its own permission counts, not its directory's: `--out
    /dev/stdout` as a user who may not write /dev); a file through a symlink is replaced in its target's
    directory."""
    from cli.files import need_writable

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "r.json").write_text("{}")
    (tmp_path / "r.json").symlink_to(shared / "r.json")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) in (tmp_path, shared) else real(p, mode))
    need_writable(str(fifo))  # (its directory, denied above, does not count)
    with pytest.raises(RequestError) as err:
        need_writable(str(tmp_path / "r.json"))
    assert f"cannot write into {shared}" in err.value.render()
