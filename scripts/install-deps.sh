#!/usr/bin/env bash
# Installs the Debian packages kiln needs, only those missing. Idempotent; apt only.
set -euo pipefail

packages=(
  cmake ninja-build g++ make pkg-config
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  libdnnl-dev
  libcli11-dev nlohmann-json3-dev libicu-dev
  libgtest-dev libgmock-dev
)

# Node.js and npm install the ONNX Runtime peer (benchmarks/peers/ort). Machines that already have a
# Node.js (e.g. from nodesource, which bundles npm) keep it; others get Debian's.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -q
$sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
