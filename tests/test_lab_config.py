"""The lab's pure parts: slurm.conf per Slurm version and topology kind, the chroot's mirror and client
wrappers, and the refusals that come before anything is started (no root or Slurm needed)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from plugins.lab import LabOptions, default_dir, slurm_conf_text, topology_files
from plugins.lab_chroot import RELEASES, chroot_dir, host_mirror, release, write_client_wrappers
from topology import BackendError
from topology.generate import design_for, generate

FABRIC = generate(design_for("tiny", pods=1, sus_per_pod=2, nodes_per_su=4, rails=0))


def _conf(**kw) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in slurm_conf_text(FABRIC, LabOptions(**kw)).splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_each_release_has_its_own_ports_directory_and_munged() -> None:
    seen = set()
    for version, rel in RELEASES.items():
        conf = _conf(base=default_dir(version), slurm=version)
        assert conf["SlurmctldPort"] == [str(rel.ctld_port)]
        assert conf["NodeName"][0].split()[0] == "gpu001" and f"Port={rel.slurmd_port} " in conf["NodeName"][0]
        assert conf["AuthInfo"] == [f"socket={default_dir(version)}/munge/munge.socket"]
        seen |= {rel.ctld_port, default_dir(version)}
    assert len(seen) == 2 * len(RELEASES)
    assert _conf(ctld_port=1234)["SlurmctldPort"] == ["1234"]


@pytest.mark.parametrize("kind,plugin,file", [("tree", ["topology/tree"], "topology.conf"),
                                              ("block", ["topology/block"], "topology.conf"),
                                              ("yaml", None, "topology.yaml")])
def test_topology_kinds(kind: str, plugin: list[str] | None, file: str) -> None:
    assert _conf(topology=kind).get("TopologyPlugin") == plugin  # topology.yaml names its own plugins
    files = topology_files(FABRIC, kind, block_size=4)
    assert list(files) == [file] and "gpu[001-004]" in files[file]


def test_unknown_topology_or_release_is_refused() -> None:
    with pytest.raises(BackendError, match="lab topology 'ring'"):
        slurm_conf_text(FABRIC, LabOptions(topology="ring"))
    with pytest.raises(BackendError, match="no lab for Slurm 23.02"):
        release("23.02")
    with pytest.raises(BackendError, match="host's packages"):
        chroot_dir(RELEASES["22.05"])


def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text("Types: deb\nURIs: http://deb.debian.org/debian-security\n\n"
                                      "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert host_mirror((tmp_path / "none.list", d)) == "http://mirror.example/debian"
    one = tmp_path / "sources.list"
    one.write_text("# a comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n")
    assert host_mirror((one, d)) == "http://other.example/debian"
    assert host_mirror((tmp_path / "nothing",)) == "http://deb.debian.org/debian"


def test_client_wrappers_run_the_chroots_program_in_the_same_directory(tmp_path: Path) -> None:
    """The wrapper's inner shell: given `chroot` as a stand-in that runs its arguments on the host."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "chroot").write_text('#!/bin/sh\nshift\nexec "$@"\n')  # drop the directory, run the rest
    (fake / "chroot").chmod(0o755)
    wrappers = tmp_path / "bin"
    write_client_wrappers(wrappers, Path("/nonexistent-root"))
    text = (wrappers / "sinfo").read_text()
    assert 'chroot "/nonexistent-root"' in text and "/usr/bin/sinfo" in text
    # swap the Slurm program for `pwd` + `echo` to see the directory and the arguments arrive
    (wrappers / "probe").write_text(text.replace("/usr/bin/sinfo", "/bin/sh -c 'pwd; echo \"$@\"' x"))
    (wrappers / "probe").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    out = subprocess.run([str(wrappers / "probe"), "--json", "a b"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=True).stdout.splitlines()
    assert out == [str(tmp_path), "--json a b"]


def test_lab_up_refuses_a_topology_the_version_cannot_read() -> None:
    res = CliRunner().invoke(cli, ["lab", "up", "--inventory", "preset:tiny", "--slurm", "22.05",
                                   "--topology", "yaml"])
    assert res.exit_code == 2 and "needs Slurm 25.05 or later" in res.output


def test_the_lab_uses_only_a_directory_of_its_own(tmp_path: Path) -> None:
    """`placer lab up --dir` removes and rewrites ctld, log, spool and bin there: `--dir /var` would have taken
    /var/log and /var/spool. A missing or empty directory, or an earlier lab's, is used; any other is refused
    before anything is touched."""
    from plugins.lab import LAB_MARK, refuse_foreign_directory
    from topology import RequestError

    refuse_foreign_directory(tmp_path / "new")
    refuse_foreign_directory(tmp_path)
    site = tmp_path / "var"
    (site / "log").mkdir(parents=True)
    (site / "log" / "syslog").write_text("kept\n")
    with pytest.raises(RequestError, match="holds files `placer lab` did not make"):
        refuse_foreign_directory(site)
    assert (site / "log" / "syslog").read_text() == "kept\n"
    (site / "etc").mkdir()
    (site / "etc" / "slurm.conf").write_text(f"{LAB_MARK}; the lab's own slurm.conf\nClusterName=placerlab\n")
    refuse_foreign_directory(site)  # an earlier lab's, taken down
    (site / "etc" / "slurm.conf").write_text("ClusterName=prod\n")
    (site / "lab.json").write_text("{}")
    refuse_foreign_directory(site)  # a lab's state: one was up here
    with pytest.raises(RequestError, match="is not a directory"):
        refuse_foreign_directory(site / "lab.json")


def test_a_daemon_slurm_restarted_is_found_by_its_pid_file(tmp_path: Path) -> None:
    """`scontrol reconfigure` on 24.05+ restarts slurmctld and slurmd under new pids: `down` must stop the
    new ones (before 2026-12-07 they were left running, 33 processes per lab). The pid file's process is
    taken only when the recorded one has ended and the new one names this lab's slurm.conf."""
    import sys

    from plugins.lab import _restarted

    (tmp_path / "run").mkdir()
    conf = tmp_path / "etc" / "slurm.conf"
    new = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(conf)])
    try:
        gone = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process has this pid
        proc = {"name": "slurmd:gpu001", "program": "python", "pid": gone}
        (tmp_path / "run" / "slurmd-gpu001.pid").write_text(f"{new.pid}\n")
        assert _restarted(proc, tmp_path)["pid"] == new.pid
        assert _restarted(proc, tmp_path / "other")["pid"] == gone  # no pid file there
        (tmp_path / "run" / "slurmd-gpu001.pid").write_text(f"{os.getpid()}\n")  # not this lab's daemon
        assert _restarted(proc, tmp_path)["pid"] == gone
        alive = {**proc, "pid": os.getpid()}
        assert _restarted(alive, tmp_path) is alive  # the recorded one still runs
    finally:
        new.kill()
        new.wait()
