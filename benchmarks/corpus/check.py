#!/usr/bin/env python3
"""Runs kiln on every built corpus model and compares its outputs with ONNX Runtime's (build.py's).

  check.py [--kiln ./build/kiln] [--only NAME,...] [--group wheel,...] [--xfail NAME,...] [--level L] [--json FILE]

For each model in manifest.json that build.py has built (models/NAME.onnx):

  kiln run models/NAME.onnx --input-dir models/NAME/inputs --compare models/NAME/outputs --rtol R --atol A

with the model's tolerances from the manifest (rtol 1e-3; atol 1e-4 unless the model says otherwise).
A model that is not built is skipped (build.py builds it). Ends with the line 'N passed, N failed, N skipped'
and exits 1 if any failed. Standard library only: any python3 runs it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln", default=str(ROOT / "build" / "kiln"))
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--group", default="", help="comma-separated groups: wheel, torchvision, transformers")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per model")
    ap.add_argument("--threads", type=int, default=0, help="kiln --threads (default: kiln's own)")
    ap.add_argument("--level", default="", help="kiln --level: none, basic, extended or all (default: kiln's own, all)")
    ap.add_argument("--json", default="", help="also write the results to this file")
    ap.add_argument("--xfail", default="", help="comma-separated models known to fail in kiln: reported as XFAIL "
                    "(counted with the skipped) rather than failing the run; one that passes is reported as XPASS")
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

    xfail = {n.strip() for n in args.xfail.split(",") if n.strip()}
    results = []
    passed = failed = skipped = 0
    xfailed = []
    for n in names:
        m = man[n]
        model = HERE / "models" / f"{n}.onnx"
        d = HERE / "models" / n
        if not model.exists() or not (d / "outputs").is_dir():
            print(f"SKIP {n}: not built (benchmarks/corpus/build.py --only {n})", flush=True)
            results.append({"name": n, "status": "skipped"})
            skipped += 1
            continue
        cmd = [args.kiln, "run", str(model), "--input-dir", str(d / "inputs"), "--compare", str(d / "outputs"),
               "--rtol", str(m["rtol"]), "--atol", str(m["atol"])]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.level:
            cmd += ["--level", args.level]
        t0 = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            rc, out = p.returncode, (p.stdout + p.stderr).strip()
        except OSError as e:  # no kiln binary (or one being relinked): nothing else can run either
            raise SystemExit(f"cannot run {args.kiln}: {e}; build it first (cmake --build build --target kiln)")
        except subprocess.TimeoutExpired as e:
            rc, out = -1, f"timed out after {args.timeout:.0f} s\n" + ((e.stdout or b"").decode(errors="replace")
                                                                        if isinstance(e.stdout, bytes) else (e.stdout or ""))
        secs = time.time() - t0
        ok = rc == 0
        if ok and "(no reference" in out:  # an output kiln has that the reference lacks: a mismatch too
            ok, out = False, out + "\nkiln: an output has no reference (its name differs from ONNX Runtime's?)"
        status = "passed" if ok else ("xfail" if n in xfail else "failed")
        lines = [l for l in out.splitlines() if l.strip()]
        passed += ok
        failed += status == "failed"
        if status == "xfail":
            xfailed.append(n)
            skipped += 1
        # the lines that say why: kiln's error, and each output that differs
        why = [l for l in lines if "differ" in l.lower() or "error" in l.lower() or "kiln:" in l
               or "not supported" in l.lower() or "unsupported" in l.lower() or "FAIL" in l or "timed out" in l]
        tag = ("XPASS" if n in xfail else "PASS") if ok else ("XFAIL" if n in xfail else "FAIL")
        print(f"{tag} {n} ({m['kind']}, {secs:.1f} s)", flush=True)
        if not ok:
            for l in (why or lines[-6:])[:8]:
                print(f"    {l}", flush=True)
        diffs = {l.split()[0]: l.split("max|diff|")[1].split()[0] for l in lines if "max|diff|" in l}
        results.append({"name": n, "kind": m["kind"], "group": m["group"], "status": status, "rc": rc,
                        "seconds": round(secs, 2), "max_abs_diff": diffs, "output": out[-4000:]})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if xfailed:
        print(f"expected failures (--xfail), counted with the skipped: {', '.join(xfailed)}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
