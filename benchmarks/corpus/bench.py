#!/usr/bin/env python3
"""Benchmarks kiln against ONNX Runtime (and OpenVINO) on every built corpus model, and prints the table.

  bench.py [--kiln ./build/kiln] [--only NAME,...] [--group wheel,...] [--vs ort] [--rounds 3]
           [--duration 1.5] [--threads 2] [--out benchmarks/results/corpus] [--profile]

For each model in manifest.json that build.py has built, on the model's own inputs (models/NAME/inputs):

  kiln bench models/NAME.onnx --input-dir models/NAME/inputs --vs ort --rounds R --duration S --threads T
             --json OUT/NAME.json [--profile]

(alternating rounds, the same inputs and threads for every engine: see `kiln bench --help`). Then a markdown
table: kiln's and each peer's median p50 and p99, the ratio kiln / peer, and with --profile the share of
kiln's time in reference kernels (from the profile that follows the timed rounds); last, the geometric mean
of the p50 ratios per peer. Standard library only. Needs the peers' venv (make peers) for --vs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

REFERENCE_LINE = re.compile(r"^(\d+) nodes?, ([\d.]+) % of the time, ran reference kernels: (.*)$")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln", default=str(ROOT / "build" / "kiln"))
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--group", default="", help="comma-separated groups: wheel, torchvision, transformers")
    ap.add_argument("--vs", default="ort", help="kiln bench --vs (default: ort)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=1.5, help="seconds of timed calls per round and engine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "corpus"))
    ap.add_argument("--profile", action="store_true", help="also profile kiln and report its reference-kernel share")
    args = ap.parse_args()

    man = json.loads((HERE / "manifest.json").read_text())["models"]
    names = list(man)
    if args.only:
        want = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in want if n not in man]
        if unknown:
            ap.error(f"not in manifest.json: {', '.join(unknown)}")
        names = want
    if args.group:
        groups = {g.strip() for g in args.group.split(",")}
        names = [n for n in names if man[n]["group"] in groups]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    cpu = isa = ""
    for n in names:
        model = HERE / "models" / f"{n}.onnx"
        inputs = HERE / "models" / n / "inputs"
        if not model.exists():
            print(f"SKIP {n}: not built (build.py builds it)", file=sys.stderr)
            continue
        cmd = [args.kiln, "bench", str(model), "--input-dir", str(inputs), "--vs", args.vs, "--rounds",
               str(args.rounds), "--duration", str(args.duration), "--threads", str(args.threads), "--json",
               str(out / f"{n}.json"), "-q"]
        if args.profile:
            cmd += ["--profile", "--profile-top", "5"]
        print(f"== {n}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        (out / f"{n}.txt").write_text(r.stdout + r.stderr)
        if r.returncode != 0:
            print(f"FAIL {n} ({time.time() - t0:.0f} s):\n{r.stderr[-2000:]}", file=sys.stderr)
            rows.append({"name": n, "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"})
            continue
        data = json.loads((out / f"{n}.json").read_text())
        cpu, isa = data.get("cpu", cpu), data.get("cpu_isa", isa)
        reference = None
        for line in r.stdout.splitlines():
            m = REFERENCE_LINE.match(line.strip())
            if m:
                reference = (float(m.group(2)), m.group(3))
        if args.profile and reference is None and "kernels" in r.stdout:
            reference = (0.0, "")
        rows.append({"name": n, "kind": man[n].get("kind", ""), "comparisons": data.get("comparisons", []),
                     "kiln": next((x for x in data["results"] if x["engine"] == "kiln"), None),
                     "reference": reference})
        print(f"   done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

    peers = []
    for row in rows:
        for c in row.get("comparisons", []):
            label = f'{c["peer"]} {c.get("peer_version", "")}'.strip()
            if label not in peers:
                peers.append(label)
    print(f"\ncpu: {cpu}; kiln kernels: {isa}; {args.threads} threads; {args.rounds} alternating rounds of "
          f"{args.duration} s per engine; medians across rounds\n")
    header = "| model | kind | kiln p50 ms | kiln p99 ms |"
    rule = "| --- | --- | --- | --- |"
    for p in peers:
        header += f" {p} p50 ms | kiln/{p.split()[0]} p50 | kiln/{p.split()[0]} p99 |"
        rule += " --- | --- | --- |"
    if args.profile:
        header += " reference kernels (% of kiln's time) |"
        rule += " --- |"
    print(header)
    print(rule)
    ratios = {p: [] for p in peers}
    for row in rows:
        if "error" in row:
            print(f"| {row['name']} | | error: {row['error']} |")
            continue
        k = row["kiln"] or {}
        line = f"| {row['name']} | {row['kind']} | {k.get('p50_ms', float('nan')):.3f} | {k.get('p99_ms', float('nan')):.3f} |"
        for p in peers:
            c = next((c for c in row["comparisons"] if f'{c["peer"]} {c.get("peer_version", "")}'.strip() == p), None)
            if c is None:
                line += " | | |"
                continue
            ratios[p].append(c["p50_ratio_kiln_over_peer"])
            line += (f' {c["peer_p50_ms"]:.3f} | {c["p50_ratio_kiln_over_peer"]:.2f} |'
                     f' {c["p99_ratio_kiln_over_peer"]:.2f} |')
        if args.profile:
            ref = row["reference"]
            line += f" {ref[0]:.1f} % {ref[1]} |" if ref and ref[0] > 0 else " 0 |"
        print(line)
    for p in peers:
        if ratios[p]:
            geo = math.exp(sum(math.log(x) for x in ratios[p]) / len(ratios[p]))
            worse = sum(1 for x in ratios[p] if x > 1.0)
            print(f"\ngeometric mean of kiln/{p} p50 over {len(ratios[p])} models: {geo:.2f}; "
                  f"{worse} model(s) slower than {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
