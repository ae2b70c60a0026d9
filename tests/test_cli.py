"""The `placer` command as a user meets it: exit codes, stdout, stderr, files written or not."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from topology import load_inventory

from .conftest import ROOT, dedent, shared_file

EXAMPLE = str(ROOT / "examples" / "inventory-example.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_example(capsys) -> None:
    code, out, err = run(capsys, "topology", "show", EXAMPLE)
    assert code == 0 and err == ""
    assert "fabric example: 20 nodes, 112 GPUs, 3 tier(s)" in out
    assert "rails: 2" in out and "NVLink domains: 2" in out


def test_show_preset_json(capsys) -> None:
    code, out, _ = run(capsys, "topology", "show", "--preset", "colossus-200k", "--format", "json")
    s = json.loads(out)
    assert code == 0 and s["gpus"] == 221_184 and s["nodes"] == 27_648 and s["tiers"] == 3
    assert s["scalable_units"] == 864 and s["rails"] == 8


def test_show_needs_exactly_one_source(capsys) -> None:
    code, _, err = run(capsys, "topology", "show")
    assert code == 2 and "give an INVENTORY file or --preset" in err


def test_validate_good_and_bad(capsys, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "topology", "validate", EXAMPLE)
    assert code == 0 and "valid" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(dedent("""
        version: 1
        node_types: {g: {gpus: 0}}
        defaults: {type: g}
        switches:
          - {name: a}
          - {name: l1, parent: b, nodes: "n[1-2"}
        """))
    code, out, err = run(capsys, "topology", "validate", str(bad))
    assert code == 2 and out == ""
    assert f"{bad}: error: node_types.g.gpus:" in err
    assert "switches[1](l1).parent: switch 'l1' names unknown parent switch 'b'" in err
    assert "malformed hostlist" in err and "Traceback" not in err
    assert "nothing written" in err


def test_validate_strict_turns_warnings_into_errors(capsys, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(Path(EXAMPLE).read_text().replace("\nnvlink_domains:", "\n  - {name: unused, parent: core}\nnvlink_domains:"))
    assert run(capsys, "topology", "validate", str(inv))[0] == 0
    code, _, err = run(capsys, "topology", "validate", "--strict", str(inv))
    assert code == 2 and "neither nodes nor child switches" in err


def test_missing_and_binary_files(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "topology", "validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read file: No such file or directory" in err
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(capsys, "topology", "validate", str(binary))
    assert code == 2 and "not a UTF-8 text file" in err


def test_generate_import_export_chain(capsys, tmp_path: Path) -> None:
    inv = tmp_path / "tiny.yaml"
    code, _, err = run(capsys, "topology", "generate", "--preset", "tiny", "--rails", "0", "-o", str(inv))
    assert code == 0 and "wrote" in err
    topo, nodes = tmp_path / "topology.conf", tmp_path / "nodes.conf"
    assert run(capsys, "topology", "export", str(inv), "--format", "slurm-tree", "-o", str(topo))[0] == 0
    assert run(capsys, "topology", "export", str(inv), "--format", "slurm-nodes", "-o", str(nodes))[0] == 0
    back = tmp_path / "back.yaml"
    code, _, err = run(capsys, "topology", "import", "--from", "slurm", "--topology-conf", str(topo),
                       "--slurm-conf", str(nodes), "-o", str(back))
    assert code == 0, err
    a, _ = load_inventory(inv)
    b, _ = load_inventory(back)
    assert a.node_names == b.node_names and a.group_names == b.group_names


def test_import_errors_write_nothing(capsys, tmp_path: Path) -> None:
    topo = tmp_path / "topology.conf"
    topo.write_text("SwitchName=s1 Nodes=n[1-2]\nSwitchName=s2 Nodes=n[2-3]\n")
    out = tmp_path / "out.yaml"
    out.write_text("precious")
    code, stdout, err = run(capsys, "topology", "import", "--from", "slurm", "--topology-conf", str(topo),
                            "--gpus-per-node", "8", "-o", str(out))
    assert code == 2 and stdout == ""
    assert f"{topo}:2 SwitchName=s2: node 'n2' is also under 's1' (line 1)" in err
    assert out.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.yaml", "topology.conf"]  # no temp file left


def test_export_to_missing_directory_and_bad_block_size(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "topology", "export", EXAMPLE, "--format", "slurm-tree", "-o",
                       str(tmp_path / "no" / "such" / "topology.conf"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "topology", "export", EXAMPLE, "--format", "gres", "--block-size", "4")
    assert code == 2 and "--block-size applies to slurm-block and slurm-yaml" in err
    code, _, err = run(capsys, "topology", "export", "preset:superpod", "--format", "slurm-block")
    assert code == 2 and "no NVLink domains" in err
    code, out, _ = run(capsys, "topology", "export", "preset:superpod", "--format", "slurm-block", "--block-size", "8")
    assert code == 0 and "BlockSizes=8,16,32" in out


def test_generate_rejects_nonsense_sizes(capsys) -> None:
    code, _, err = run(capsys, "topology", "generate", "--preset", "tiny", "--pods", "0")
    assert code == 2 and "pods must be at least 1" in err
    code, _, err = run(capsys, "topology", "generate", "--preset", "gb200-nvl72", "--nodes-per-su", "100")
    assert code == 2 and "multiple of the NVLink domain size" in err
    code, _, err = run(capsys, "topology", "generate", "--preset", "nope")
    assert code == 2 and "Invalid value for '--preset'" in err


def test_unknown_preset_source(capsys) -> None:
    code, _, err = run(capsys, "topology", "export", "preset:nope", "--format", "dot")
    assert code == 2 and "unknown preset 'nope'" in err


def test_import_x5_through_the_cli(capsys, tmp_path: Path) -> None:
    conf = shared_file("fabrics/psmn-x5/X5.topology.conf")
    out = tmp_path / "x5.yaml"
    code, _, err = run(capsys, "topology", "import", "--from", "slurm", "--topology-conf", str(conf),
                       "--gpus-per-node", "4", "-o", str(out))
    assert code == 0 and "warning:" in err and "wrote" in err
    code, _, err = run(capsys, "topology", "import", "--from", "slurm", "--topology-conf", str(conf),
                       "--gpus-per-node", "4", "--strict", "-o", str(tmp_path / "strict.yaml"))
    assert code == 2 and not (tmp_path / "strict.yaml").exists()


def test_installed_console_script_runs() -> None:
    """The `placer` entry point of the installed package (not the in-process main)."""
    exe = Path(sys.executable).parent / "placer"
    if not exe.exists():
        pytest.skip(f"no console script beside {sys.executable}: package not installed in this interpreter")
    proc = subprocess.run([str(exe), "topology", "show", "--preset", "superpod"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "1,024 GPUs" in proc.stdout and proc.stderr == ""
    proc = subprocess.run([str(exe), "topology", "validate", "/nonexistent.yaml"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_written_files_are_readable_by_slurm(capsys, tmp_path: Path) -> None:
    """slurmctld runs as SlurmUser: an export must not be 0600 (the temp file's mode); a file replaced
    keeps its own mode."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        new = tmp_path / "topology.conf"
        assert run(capsys, "topology", "export", "preset:tiny", "--format", "slurm-tree", "-o", str(new))[0] == 0
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        new.chmod(0o640)
        assert run(capsys, "topology", "export", "preset:tiny", "--format", "slurm-tree", "-o", str(new))[0] == 0
        assert stat.S_IMODE(new.stat().st_mode) == 0o640
    finally:
        os.umask(old)


@pytest.mark.parametrize("fmt, version, refused", [
    ("slurm-block", "22.05", "Slurm 22.05 cannot read topology/block (slurm-block): it needs Slurm 23.11 or later"),
    ("slurm-yaml", "24.11", "Slurm 24.11 cannot read topology.yaml (slurm-yaml): it needs Slurm 25.05 or later"),
    ("slurm-yaml", "slurm 26.05.5", None), ("slurm-block", "24.11", None), ("slurm-tree", "22.05", None)])
def test_export_refuses_formats_the_slurm_version_cannot_read(capsys, fmt: str, version: str,
                                                               refused: str | None) -> None:
    code, out, err = run(capsys, "topology", "export", "preset:gb200-nvl72", "--format", fmt, "--slurm-version", version)
    if refused:
        assert (code, out) == (2, "") and refused in err
    else:
        assert code == 0 and (out.startswith("#") or out.startswith("- topology")), err


def test_a_stop_signal_never_deadlocks_on_the_event_the_main_thread_waits_on() -> None:
    """serve/apply stop on SIGTERM through an Event the main thread waits on. The handler runs in the main
    thread, possibly just after it took the event's lock inside `wait`: here it is called holding that
    lock, as then. It must return (the event set from another thread), not wait for the lock forever."""
    code = ("import signal, threading\nfrom cli.serve_cmds import _stop_on_signals\nev = threading.Event()\n"
            "_stop_on_signals(ev)\nwith ev._cond:\n    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)\n"
            "assert ev.wait(5)\nprint('stopped')\n")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the stop handler deadlocked on the event's own lock")
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr
