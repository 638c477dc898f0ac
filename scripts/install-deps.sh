#!/usr/bin/env bash
# Installs the Debian packages kiln needs, only those missing. Idempotent; apt only (the Python peers
# come from PyPI into a venv: `make peers`).
set -euo pipefail

packages=(
  cmake ninja-build g++ make pkg-config
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  libdnnl-dev ocl-icd-opencl-dev
  libcli11-dev nlohmann-json3-dev libicu-dev
  libgtest-dev libgmock-dev
  python3 python3-venv ca-certificates
  fortunes-min
  chromium
  libboost-dev
  wrk
)
# libdnnl-dev's CMake config asks for OpenCL (find_package(OpenCL)) even for the CPU engine: without
# ocl-icd-opencl-dev, which apt's --no-install-recommends leaves out, cmake stops at configure.
# python3-venv and ca-certificates: `make peers` makes benchmarks/peers/.venv and pip reaches PyPI over TLS.
# fortunes-min: real English sentences for the int8 accuracy test on real text (`make real-text`).
# chromium: the test that renders `kiln pipeline`'s report.html headless and checks its charts (and
# scripts/report-screenshot.sh).
# libboost-dev: Boost.Beast and Asio (header-only), kiln serve's HTTP layer (serve/http_server.h says why).
# wrk: the load tests of kiln serve, scripts/serve-load-test.sh.

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
