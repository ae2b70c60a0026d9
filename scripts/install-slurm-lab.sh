#!/usr/bin/env bash
# Debian's Slurm 22.05 packages for `placer lab` and the integration tests (see ../shared/SLURM-LAB.md),
# lua5.1 for the stand-alone tests of job_submit.lua, and debootstrap for the 24.11 / 26.05 labs (their
# chroots are made by `placer lab up --slurm V` on first use), and systemd for `systemd-analyze verify` of
# placer's units.
# Needs root (or sudo). The lab itself is started by `placer lab up`, never by systemd.
set -euo pipefail
pkgs=(munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins lua-socket lua-cjson lua5.1 debootstrap systemd)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]} == 0)); then echo "install-slurm-lab.sh: already installed" >&2; exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-slurm-lab.sh: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-slurm-lab.sh: installed ${missing[*]}" >&2
