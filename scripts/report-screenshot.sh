#!/usr/bin/env bash
# A PNG of a `kiln pipeline` report.html, drawn by headless Chromium (Debian's chromium, installed by
# scripts/install-deps.sh), e.g. for the README:
#
#   scripts/report-screenshot.sh out/report.html docs/report.png [WIDTHxHEIGHT]
#
# The picture is the browser window: 1280x2400 (the default) holds the headline, the machine and the
# latency, speed-up and size charts of a one-configuration report; give a taller size for the whole page.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
html=$1
png=$2
size=${3:-1280x2400}
if ! [[ $size =~ ^[0-9]+x[0-9]+$ ]]; then
  echo "report-screenshot: the size must be WIDTHxHEIGHT, e.g. 1280x2400, not '$size'" >&2
  exit 2
fi
if ! command -v chromium >/dev/null; then
  echo "report-screenshot: chromium is not installed: run scripts/install-deps.sh" >&2
  exit 1
fi
if [ ! -f "$html" ]; then
  echo "report-screenshot: no such file: $html" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
html_abs=$(realpath "$html")
png_abs=$(realpath -m "$png")
rm -f "$png_abs"
# A fresh profile, so that a running Chromium of the user's is not disturbed. --no-sandbox: Chromium's
# sandbox does not start as root or in most containers, and the page is a local file without script.
if ! timeout 60 chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$work/profile" --window-size="${size/x/,}" --screenshot="$png_abs" \
    "file://$html_abs" >"$work/log" 2>&1 || [ ! -s "$png_abs" ]; then
  echo "report-screenshot: chromium did not write $png:" >&2
  tail -n 20 "$work/log" >&2
  exit 1
fi
echo "$png"
