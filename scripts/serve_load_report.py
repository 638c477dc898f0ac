#!/usr/bin/env python3
"""The Python half of scripts/serve-load-test.sh (the load tests of `kiln serve`): standard library only.

Subcommands (the shell script calls them; each is small enough to run by hand):
  body OUT [--batch B] [--seq S] [--seed N]   an OIP JSON infer request of generated token ids
  lua BODY OUT                                wrk's script: POST BODY, count the responses by status
  wrk FILE                                    wrk's output (with the Lua counts) as shell assignments
  access-log FILE                             a kiln serve --access-log file's figures as shell assignments
  http METHOD URL [--body F] [--out FILE]     one request; prints the status, writes the body to FILE
  bad-requests PORT COUNT --model M --body F  COUNT bad requests, one per connection; shell assignments
  report WORK OUT                             WORK/meta.tsv and WORK/s*/result.tsv as markdown to OUT;
                                              prints the summary table
Shell assignments are `name=value` lines, values quoted with shlex, for `eval`.
"""
import argparse
import collections
import http.client
import json
import os
import random
import re
import shlex
import socket
import sys
import urllib.parse

# ---------------------------------------------------------------------------------------------- requests


def make_body(batch, seq, seed, outputs=None):
    """input_ids (CLS, random word-piece ids, SEP), attention_mask all 1, token_type_ids all 0, INT64 [B,S];
    `outputs`: the output names asked for (None: every output)."""
    rng = random.Random(seed)
    ids = []
    for _ in range(batch):
        ids += [101] + [rng.randrange(1000, 29000) for _ in range(seq - 2)] + [102]
    shape = [batch, seq]
    inputs = [
        {"name": "input_ids", "shape": shape, "datatype": "INT64", "data": ids},
        {"name": "attention_mask", "shape": shape, "datatype": "INT64", "data": [1] * (batch * seq)},
        {"name": "token_type_ids", "shape": shape, "datatype": "INT64", "data": [0] * (batch * seq)},
    ]
    request = {"inputs": inputs}
    if outputs:
        request["outputs"] = [{"name": name} for name in outputs]
    return json.dumps(request, separators=(",", ":"))


LUA = r"""-- wrk script of scripts/serve-load-test.sh: every request POSTs the JSON inference request in
-- %(body)s; the responses are counted by status (and 503s without Retry-After) in every wrk thread,
-- and done() prints the totals as "status CODE N" and "no_retry_after N" lines after wrk's summary.
local f = assert(io.open(%(body_lua)s, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  no_retry_after = 0
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 503 then
    local found = false
    for name, _ in pairs(headers) do
      if string.lower(name) == "retry-after" then found = true end
    end
    if not found then no_retry_after = no_retry_after + 1 end
  end
end

function done(summary, latency, requests)
  local total, missing = {}, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do total[code] = (total[code] or 0) + n end
    missing = missing + t:get("no_retry_after")
  end
  for code, n in pairs(total) do io.write(string.format("status %%d %%d\n", code, n)) end
  io.write(string.format("no_retry_after %%d\n", missing))
end
"""


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ----------------------------------------------------------------------------------------------- parsing

UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse_wrk(text):
    """wrk 4's summary (with --latency) and the Lua status lines. Missing figures are empty strings."""
    r = {"rps": "", "requests": "", "duration_s": "", "p50_ms": "", "p75_ms": "", "p90_ms": "", "p99_ms": "",
         "non2xx": 0, "sock_errors": 0, "sock_detail": "connect 0, read 0, write 0, timeout 0",
         "no_retry_after": "", "s200": 0, "s503": 0, "s_other": 0, "statuses": ""}
    if m := re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M):
        r["rps"] = float(m.group(1))
    if m := re.search(r"^\s*(\d+) requests in ([0-9.]+[a-z]+)", text, re.M):
        r["requests"] = int(m.group(1))
        r["duration_s"] = to_ms(m.group(2)) / 1e3
    for pct in ("50", "75", "90", "99"):
        if m := re.search(r"^\s+%s%%\s+([0-9.]+[a-z]+)" % pct, text, re.M):
            r["p%s_ms" % pct] = round(to_ms(m.group(1)), 3)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        r["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        r["sock_errors"] = sum(int(g) for g in m.groups())
        r["sock_detail"] = "connect %s, read %s, write %s, timeout %s" % m.groups()
    counts = {int(c): int(n) for c, n in re.findall(r"^status (\d+) (\d+)$", text, re.M)}
    if m := re.search(r"^no_retry_after (\d+)$", text, re.M):
        r["no_retry_after"] = int(m.group(1))
    r["s200"] = counts.get(200, 0)
    r["s503"] = counts.get(503, 0)
    r["s_other"] = sum(n for c, n in counts.items() if c not in (200, 503))
    r["statuses"] = " ".join("%d:%d" % (c, counts[c]) for c in sorted(counts))
    return r


def percentile(values, p):
    """Nearest rank."""
    if not values:
        return ""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return round(v[k], 3)


def parse_access_log(path):
    r = {"lines": 0, "bad_lines": 0, "s200": 0, "non200": 0, "statuses": "", "infer200": 0, "ms_p50": "",
         "ms_p99": "", "ms_max": "", "queue_p50": "", "queue_p99": "", "compute_p50": "", "batch_mean": "",
         "batches": "", "missing_fields": 0}
    statuses = collections.Counter()
    ms, queue, compute, batch = [], [], [], []
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        if not line.strip():
            continue
        r["lines"] += 1
        try:
            e = json.loads(line)
            status = int(e["status"])
        except (ValueError, KeyError, TypeError):
            r["bad_lines"] += 1
            continue
        statuses[status] += 1
        if status == 200 and str(e.get("path", "")).endswith("/infer"):
            r["infer200"] += 1
            if not all(k in e for k in ("ms", "batch", "queue_ms", "compute_ms", "model", "version")):
                r["missing_fields"] += 1
            if isinstance(e.get("ms"), (int, float)):
                ms.append(float(e["ms"]))
            if isinstance(e.get("queue_ms"), (int, float)):
                queue.append(float(e["queue_ms"]))
            if isinstance(e.get("compute_ms"), (int, float)):
                compute.append(float(e["compute_ms"]))
            if isinstance(e.get("batch"), int):
                batch.append(e["batch"])
    r["s200"] = statuses.get(200, 0)
    r["non200"] = sum(n for c, n in statuses.items() if c != 200)
    r["statuses"] = " ".join("%d:%d" % (c, statuses[c]) for c in sorted(statuses))
    r["ms_p50"], r["ms_p99"] = percentile(ms, 50), percentile(ms, 99)
    r["ms_max"] = round(max(ms), 3) if ms else ""
    r["queue_p50"], r["queue_p99"] = percentile(queue, 50), percentile(queue, 99)
    r["compute_p50"] = percentile(compute, 50)
    if batch:
        r["batch_mean"] = round(sum(batch) / len(batch), 2)
        # Requests by the size of the batch they ran in.
        hist = collections.Counter(batch)
        r["batches"] = " ".join("%d:%d" % (b, hist[b]) for b in sorted(hist))
    return r


def assignments(d):
    return "".join("%s=%s\n" % (k, shlex.quote(str(v))) for k, v in d.items())


# ------------------------------------------------------------------------------------------------- HTTP


def http_call(method, url, out, body_file):
    u = urllib.parse.urlsplit(url)
    body = open(body_file, "rb").read() if body_file else (b"" if method == "POST" else None)
    headers = {"Content-Type": "application/json"} if body_file else {}
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        status = resp.status
    except OSError as e:
        status, data = 0, ("no reply: %s" % e).encode()
    finally:
        conn.close()
    if out:
        with open(out, "wb") as f:
            f.write(data)
    print(status)


def exchange(port, raw):
    """Sends raw bytes on a new connection; returns the status of the one response (0: none)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        try:
            s.sendall(raw)
        except OSError:
            pass  # the server may answer (431) and close before reading everything
        data = b""
        want = None
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            end = data.find(b"\r\n\r\n")
            if end >= 0 and want is None:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", data[:end])
                want = end + 4 + (int(m.group(1)) if m else 0)
            if want is not None and len(data) >= want:
                break
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else 0
    finally:
        s.close()


def bad_requests(port, count, model, body_file):
    good = json.load(open(body_file))
    infer = "/v2/models/%s/infer" % model

    def req(target, body, extra=""):
        b = body.encode()
        return ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                "%sContent-Length: %d\r\n\r\n" % (target, extra, len(b))).encode() + b

    wrong_shape = json.loads(json.dumps(good))
    for t in wrong_shape["inputs"]:
        t["shape"] = [1] + t["shape"]  # rank 3 where the model takes [batch, sequence]
    kinds = [
        ("malformed_json", req(infer, '{"inputs": [1,')),
        ("wrong_shape", req(infer, json.dumps(wrong_shape))),
        ("unknown_model", req("/v2/models/no-such-model/infer", json.dumps(good))),
        ("huge_header", req(infer, json.dumps(good), "X-Big: " + "a" * 20000 + "\r\n")),
    ]
    statuses = {name: collections.Counter() for name, _ in kinds}
    for i in range(count):
        name, raw = kinds[i % len(kinds)]
        statuses[name][exchange(port, raw)] += 1
    out = {}
    total = collections.Counter()
    for name, c in statuses.items():
        out[name] = " ".join("%d:%d" % (s, c[s]) for s in sorted(c))
        total.update(c)
    out["n4xx"] = sum(n for s, n in total.items() if 400 <= s < 500)
    out["n5xx"] = sum(n for s, n in total.items() if s >= 500)
    out["no_reply"] = total.get(0, 0)
    out["other"] = sum(n for s, n in total.items() if 0 < s < 400)
    return out


# ----------------------------------------------------------------------------------------------- report


def read_tsv(path):
    rows = []
    if os.path.exists(path):
        for line in open(path, encoding="utf-8", errors="replace").read().splitlines():
            if line:
                rows.append(line.split("\t"))
    return rows


def md_cell(s):
    return s.replace("|", "\\|")


def report(work, out):
    meta = dict((r[0], r[1] if len(r) > 1 else "") for r in read_tsv(os.path.join(work, "meta.tsv")))
    ran = [n for n in meta.get("scenarios", "").split() if n]
    scenarios = []
    for n in ran:
        rows = read_tsv(os.path.join(work, "s%s" % n, "result.tsv"))
        s = {"n": n, "title": "", "cmds": [], "configs": [], "figs": [], "checks": [], "notes": [], "errors": []}
        for r in rows:
            kind, rest = r[0], r[1:]
            if kind == "title":
                s["title"] = rest[0]
            elif kind == "cmd":
                s["cmds"].append(rest[0])
            elif kind == "config":
                s["configs"].append((rest[0], rest[1]))
            elif kind == "fig":
                s["figs"].append((rest[0], rest[1] if len(rest) > 1 else ""))
            elif kind == "check":
                s["checks"].append((rest[0], rest[1], rest[2] if len(rest) > 2 else ""))
            elif kind == "note":
                s["notes"].append(rest[0])
            elif kind == "error":
                s["errors"].append(rest[0])
        if not rows:
            s["errors"].append("the scenario wrote no result (see the script's output)")
        failed = s["errors"] or any(c[1] != "PASS" for c in s["checks"])
        s["result"] = "ERROR" if s["errors"] else ("FAIL" if failed else "PASS")
        scenarios.append(s)

    summary = ["| # | Scenario | Figures | Checks | Result |", "|---|---|---|---|---|"]
    for s in scenarios:
        figs = "; ".join("%s: %s" % (k, v) for k, v in s["figs"] if not k.startswith("_"))
        checks = "; ".join("%s %s" % (c[1], c[0]) for c in s["checks"])
        if s["errors"]:
            checks = (checks + "; " if checks else "") + "ERROR: " + " / ".join(s["errors"])
        summary.append("| %s | %s | %s | %s | **%s** |" % (s["n"], md_cell(s["title"]), md_cell(figs),
                                                           md_cell(checks), s["result"]))
    passed = sum(1 for s in scenarios if s["result"] == "PASS")

    md = ["# kiln serve load tests", ""]
    md.append("Run %s by `%s`. %d of %d scenarios passed." % (meta.get("date", "?"), meta.get("invocation", "?"),
                                                             passed, len(scenarios)))
    md.append("")
    md.append("- CPU: %s, %s cores online, avx512f: %s" % (meta.get("cpu", "?"), meta.get("cores", "?"),
                                                           meta.get("avx512f", "?")))
    md.append("- kiln serve: `--threads %s --http-threads %s`; binary %s (%s)" % (
        meta.get("threads", "?"), meta.get("http_threads", "?"), meta.get("binary", "?"), meta.get("commit", "?")))
    md.append("- load generator: %s, on the same machine as the server (it takes CPU from it)" % meta.get("wrk", "?"))
    md.append("- load average at the start: %s" % meta.get("loadavg", "?"))
    md.append("- access log (`--access-log`): %s" % meta.get("access_log", "?"))
    if meta.get("bert_base"):
        md.append("- bert-base: %s" % meta["bert_base"])
    md.append("")
    md += summary
    for s in scenarios:
        md += ["", "## %s. %s" % (s["n"], s["title"]), ""]
        for name, text in s["configs"]:
            md.append("`%s`: `%s`" % (name, text))
            md.append("")
        if s["figs"]:
            md += ["| Figure | Value |", "|---|---|"]
            md += ["| %s | %s |" % (md_cell(k.lstrip("_")), md_cell(v)) for k, v in s["figs"]]
            md.append("")
        for label, verdict, detail in s["checks"]:
            md.append("- **%s** %s%s" % (verdict, label, (": " + detail) if detail else ""))
        for e in s["errors"]:
            md.append("- **ERROR** " + e)
        if s["checks"] or s["errors"]:
            md.append("")
        for n in s["notes"]:
            md += [n, ""]
        if s["cmds"]:
            md += ["Commands, in order (from the repository root):", "", "```sh"] + s["cmds"] + ["```"]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(summary))
    print("\n%d of %d scenarios passed; the report: %s" % (passed, len(scenarios), out))
    return 0 if passed == len(scenarios) else 1


# ------------------------------------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("body")
    a.add_argument("out")
    a.add_argument("--batch", type=int, default=1)
    a.add_argument("--seq", type=int, default=16)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--outputs", default="", help="comma-separated output names to ask for (default: all)")
    a = sub.add_parser("lua")
    a.add_argument("body")
    a.add_argument("out")
    a = sub.add_parser("wrk")
    a.add_argument("file")
    a = sub.add_parser("access-log")
    a.add_argument("file")
    a = sub.add_parser("http")
    a.add_argument("method")
    a.add_argument("url")
    a.add_argument("--out")
    a.add_argument("--body")
    a = sub.add_parser("bad-requests")
    a.add_argument("port", type=int)
    a.add_argument("count", type=int)
    a.add_argument("--model", required=True)
    a.add_argument("--body", required=True)
    a = sub.add_parser("report")
    a.add_argument("work")
    a.add_argument("out")
    args = p.parse_args()

    if args.cmd == "body":
        with open(args.out, "w") as f:
            f.write(make_body(args.batch, args.seq, args.seed, [o for o in args.outputs.split(",") if o]))
    elif args.cmd == "lua":
        path = os.path.abspath(args.body)
        with open(args.out, "w") as f:
            f.write(LUA % {"body": path, "body_lua": lua_string(path)})
    elif args.cmd == "wrk":
        sys.stdout.write(assignments(parse_wrk(open(args.file, errors="replace").read())))
    elif args.cmd == "access-log":
        sys.stdout.write(assignments(parse_access_log(args.file)))
    elif args.cmd == "http":
        http_call(args.method, args.url, args.out, args.body)
    elif args.cmd == "bad-requests":
        sys.stdout.write(assignments(bad_requests(args.port, args.count, args.model, args.body)))
    elif args.cmd == "report":
        return report(args.work, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
