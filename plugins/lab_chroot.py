"""Newer Slurm for the lab: Debian trixie's 24.11 and sid's 26.05 in debootstrap chroots beside the host's 22.05.

Facts in ../shared/SLURM-LAB.md. A chroot is made once (about 90 s: debootstrap minbase, then Debian's
Slurm packages inside) under /var/lib/placer-chroot/SUITE and reused; it is only marked ready when
every step finished, so a half-made chroot is never used. A lab in a chroot bind-mounts the lab's own
directory and the hook socket's directory at the same paths inside, so one slurm.conf is true on both
sides; the mounts are recorded and undone by `placer lab down` (`umount -R`, in reverse order).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from topology import BackendError

log = logging.getLogger(__name__)

CHROOT_ROOT = Path("/var/lib/placer-chroot")
CHROOT_PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client", "slurm-wlm-basic-plugins",
                   "lua-socket", "lua-cjson", "ca-certificates")
CLIENTS = ("sinfo", "squeue", "scontrol", "sbatch", "scancel", "srun", "salloc", "sacct", "sprio", "sdiag")
READY = ".placer-ready"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class SlurmRelease:
    version: str  # "26.05": what `--slurm` takes
    suite: str | None  # the Debian suite whose packages run it; None: the host's own packages
    ctld_port: int  # the lab's default ports, apart per release so labs of several versions run at once
    slurmd_port: int


RELEASES: dict[str, SlurmRelease] = {
    "22.05": SlurmRelease("22.05", None, 16817, 17001),
    "24.11": SlurmRelease("24.11", "trixie", 16827, 20001),
    "26.05": SlurmRelease("26.05", "sid", 16837, 23001),
}


def release(version: str) -> SlurmRelease:
    try:
        return RELEASES[version]
    except KeyError:
        raise BackendError(f"no lab for Slurm {version}: choose one of {', '.join(RELEASES)}") from None


def host_mirror(sources: tuple[Path, ...] = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))) -> str:
    """The Debian mirror the host's apt uses (deb822 `URIs:` or one-line `deb URL`), else deb.debian.org."""
    for src in sources:
        files = sorted(src.glob("*.sources")) + sorted(src.glob("*.list")) if src.is_dir() else [src]
        for f in files:
            try:
                text = f.read_text(errors="replace")
            except OSError:
                continue
            for m in re.finditer(r"^\s*(?:URIs:|deb(?:\s+\[[^\]]*\])?)\s+(\S+)", text, re.M):
                url = m.group(1).rstrip("/")
                if url.endswith("/debian"):  # not debian-security, not third-party repositories
                    return url
    return DEFAULT_MIRROR


def chroot_dir(rel: SlurmRelease, root: Path = CHROOT_ROOT) -> Path:
    if rel.suite is None:
        raise BackendError(f"Slurm {rel.version} runs from the host's packages, not a chroot")
    return root / rel.suite


def chroot_ready(rel: SlurmRelease, root: Path = CHROOT_ROOT) -> bool:
    return (chroot_dir(rel, root) / READY).is_file()


def _sh(cmd: list[str], what: str, timeout_s: float = 900) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise BackendError(f"{what}: {cmd[0]} not found (apt-get install -y debootstrap)") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{what}: `{' '.join(cmd)}` took over {timeout_s:g} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BackendError(f"{what}: `{' '.join(cmd)}` failed ({done.returncode}):\n{tail}")
    return done.stdout


def _prepare_apt(d: Path, suite: str, mirror: str) -> None:
    (d / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\n# placer: packages start no daemons here\nexit 101\n")
    (d / "usr/sbin/policy-rc.d").chmod(0o755)
    (d / "etc/apt/sources.list").write_text(f"deb {mirror} {suite} main\n")
    # sid's Release file may be past its Valid-Until date (SLURM-LAB.md)
    (d / "etc/apt/apt.conf.d/99placer").write_text('Acquire::Check-Valid-Until "false";\n'
                                                   'APT::Install-Recommends "false";\n')
    shutil.copy2("/etc/resolv.conf", d / "etc/resolv.conf")


def make_chroot(rel: SlurmRelease, root: Path = CHROOT_ROOT, mirror: str | None = None) -> Path:
    """The release's chroot, made now unless a finished one is there (needs root and debootstrap)."""
    final = chroot_dir(rel, root)
    if chroot_ready(rel, root):
        return final
    if os.geteuid() != 0:
        raise BackendError(f"making the Slurm {rel.version} chroot needs root (debootstrap, mount, chroot)")
    if shutil.which("debootstrap") is None:
        raise BackendError("debootstrap not found: apt-get install -y debootstrap")
    assert rel.suite is not None
    mirror = mirror or host_mirror()
    work = root / f"{rel.suite}.partial"
    if work.exists():  # an interrupted earlier attempt: nothing in it can be trusted
        unmount_all(work)
        shutil.rmtree(work)
    root.mkdir(parents=True, exist_ok=True)
    what = f"making the Slurm {rel.version} chroot ({rel.suite})"
    log.warning("%s under %s from %s (about 90 s, once)", what, final, mirror)
    _sh(["debootstrap", "--variant=minbase", rel.suite, str(work), mirror], what)
    _prepare_apt(work, rel.suite, mirror)
    mounts = mount_system(work)
    try:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *CHROOT_PACKAGES]):
            _sh(["env", "-i", *(f"{k}={v}" for k, v in env.items()), "chroot", str(work), *cmd], what)
        version = _sh(["chroot", str(work), "/usr/sbin/slurmctld", "-V"], what).split()[-1]
    finally:
        unmount(mounts)
    if not version.startswith(rel.version):
        raise BackendError(f"{what}: the suite now ships Slurm {version}, not {rel.version}")
    if final.exists():
        unmount_all(final)
        shutil.rmtree(final)
    work.rename(final)
    (final / READY).write_text(version + "\n")
    return final


# -- mounts ----------------------------------------------------------------------------------------
def mount_system(d: Path) -> list[str]:
    """/proc, /dev and /sys/fs/cgroup inside `d` (slurmd stops without the cgroup fs); returns mount points."""
    return [bind(Path("proc"), d / "proc", proc=True), bind(Path("/dev"), d / "dev"),
            bind(Path("/sys/fs/cgroup"), d / "sys/fs/cgroup")]


def bind(src: Path, target: Path, proc: bool = False) -> str:
    target.mkdir(parents=True, exist_ok=True)
    if proc:
        _sh(["mount", "-t", "proc", "proc", str(target)], f"mounting /proc in {target.parent}")
    else:
        _sh(["mount", "--rbind", str(src), str(target)], f"bind-mounting {src} at {target}")
        # unmounting the copy must never reach the host's own mounts
        _sh(["mount", "--make-rslave", str(target)], f"making {target} a slave mount")
    return str(target)


def unmount(points: list[str]) -> list[str]:
    """Undo mounts in reverse order; returns those that would not go (named in the log)."""
    stuck = []
    for p in reversed(points):
        if not _mounted(p):
            continue
        done = subprocess.run(["umount", "-R", p], capture_output=True, text=True)
        if done.returncode != 0:
            done = subprocess.run(["umount", "-R", "-l", p], capture_output=True, text=True)
        if done.returncode != 0:
            log.warning("could not unmount %s: %s", p, done.stderr.strip())
            stuck.append(p)
    return stuck


def _mounted(point: str) -> bool:
    real = os.path.realpath(point)
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1] == real for line in fh)


def unmount_all(d: Path) -> None:
    """Every mount under `d` (a chroot about to be removed: rmtree must never walk into /dev or /sys)."""
    real = os.path.realpath(d)
    with open("/proc/self/mounts") as fh:
        points = sorted({line.split()[1] for line in fh if line.split()[1].startswith(real + "/")}, key=len)
    if unmount(points):
        raise BackendError(f"mounts under {d} would not go; remove it by hand after `umount -R`")


# -- clients ---------------------------------------------------------------------------------------
def write_client_wrappers(bin_dir: Path, d: Path) -> None:
    """sinfo, squeue, scontrol, sbatch... that run the chroot's own clients (the host's 22.05 ones cannot talk
    to a newer controller); SLURM_CONF and the rest of the environment pass through, the working directory
    too when it exists inside."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in CLIENTS:
        f = bin_dir / name
        f.write_text(f'#!/bin/sh\n# written by `placer lab up`: Slurm\'s {name} from {d}\n'
                     f'exec chroot "{d}" /bin/sh -c \'cd "$1" 2>/dev/null || cd /; shift; exec "$@"\' '
                     f'placer-chroot "$PWD" /usr/bin/{name} "$@"\n')
        f.chmod(0o755)


def chroot_user(d: Path, name: str) -> tuple[int, int]:
    """uid and gid of a user in the chroot's own /etc/passwd (they may differ from the host's)."""
    for line in (d / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2]), int(parts[3])
    raise BackendError(f"no user {name} in {d}/etc/passwd: is the chroot complete?")
