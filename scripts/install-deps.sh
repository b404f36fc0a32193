#!/usr/bin/env bash
# Installs the Debian 12 packages rwkvpp needs, only those that are missing (safe to run again).
set -euo pipefail

packages=(cmake ninja-build g++ libeigen3-dev libxsimd-dev nlohmann-json3-dev libboost-test-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin gnuplot-nox  # MPI: data-parallel training (optional); gnuplot: train's loss plot
  libcpp-httplib-dev pkgconf)             # rwkv-server (HTTP)
[ "${RWKV_WITH_FORMAT:-0}" = 1 ] && packages+=(clang-format)
[ "${RWKV_WITH_FUZZ:-0}" = 1 ] && packages+=(clang libclang-rt-14-dev)
[ "${RWKV_WITH_ARM:-0}" = 1 ] && packages+=(g++-aarch64-linux-gnu qemu-user)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
