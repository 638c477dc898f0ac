#!/usr/bin/env python3
"""ONNX Runtime and OpenVINO (CPU) as kiln's peers.

They speak kiln's exchange format (.npy files in, .npy files out), so that tests and
`kiln bench --vs ort,openvino` drive them the way they drive `kiln run`. Installed by `make peers`
into benchmarks/peers/.venv from PyPI (versions pinned in requirements.txt); run it with that venv's
python.

  peer.py run MODEL.onnx --input-dir DIR --output-dir DIR [options] [--optimized-model-out PATH]
  peer.py bench MODEL.onnx --input-dir DIR [options] [--warmup W] [--iterations N | --duration S]
  peer.py versions
"""

import argparse
import json
import os
import re
import sys
import time

ENGINES = ("ort", "openvino", "openvino-f32")
ORT_LEVELS = ("disabled", "basic", "extended", "all")

EPILOG = """engines:
  ort            ONNX Runtime, CPU execution provider, graph optimization level --opt-level
  openvino       OpenVINO CPU plugin at its default inference precision (bf16 or f16 where the CPU
                 computes in it, else f32; the bench result names the one used), latency hint
  openvino-f32   the same with INFERENCE_PRECISION_HINT=f32: the fair fp32 peer
bench prints one JSON object: load_ms, first_ms, iterations, total_ms, latencies_ms (every timed call),
min/mean/p50/p90/p95/p99/max_ms, peak_rss_mb, engine, version and precision.
On error: one line "ENGINE: error: ..." on stderr (ENGINE is ort or openvino), exit status 2."""


class PeerError(Exception):
    """Anything the caller got wrong or the engine refused; main() prints it as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise PeerError(message)


def file_stem(name):
    """Tensor names become file names as kiln makes them: each byte of the UTF-8 name outside
    [A-Za-z0-9._-] becomes '_' (so "xé" is "x__", as in kiln's io::npy_file_stem)."""
    allowed = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    s = "".join(chr(b) if b in allowed else "_" for b in name.encode("utf-8"))
    return "_" + s if s in ("", ".", "..") else s


def read_feeds(names, input_dir):
    import numpy as np

    feeds = {}
    for name in names:
        path = os.path.join(input_dir, file_stem(name) + ".npy")
        if not os.path.exists(path):
            raise PeerError(f'missing input "{name}": no {path}')
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except Exception as e:
            raise PeerError(f"{path}: {e}") from e
    return feeds


def write_npy(path, array):
    """To a temporary name, then renamed: a reader never sees a half-written file (as kiln does)."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype == object:
        raise PeerError(f"{os.path.basename(path)}: an output of strings or objects cannot be written as .npy")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        # Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
        np.save(f, np.require(array, requirements="C"), allow_pickle=False)
    os.replace(tmp, path)


def peak_rss_mb():
    """VmHWM of this process (getrusage's maxrss is inherited across exec on Linux: a child of a big
    kiln bench would report its parent's peak)."""
    try:
        with open("/proc/self/status", encoding="latin-1") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class stderr_silenced:
    """Points file descriptor 2 at /dev/null for the duration: native libraries write there directly."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        return False


class OrtEngine:
    name = "ort"

    def __init__(self, args):
        if not os.path.exists(args.model):
            raise PeerError(f"cannot read model {args.model}: no such file")
        import onnxruntime as ort

        self.version = ort.__version__
        self.precision = "f32"
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[args.opt_level]
        # ORT's own log goes to stderr; errors reach us as exceptions, so keep only fatal messages.
        options.log_severity_level = 4
        if args.threads is not None:
            # Intra-op threads pinned and one inter-op thread: comparable with kiln --threads N.
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if getattr(args, "optimized_model_out", None):
            options.optimized_model_filepath = args.optimized_model_out
        self.session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        """The outputs, in output_names' order."""
        return self.session.run(self.output_names, feeds)


class OpenVinoEngine:
    name = "openvino"

    def __init__(self, args, f32):
        if not os.path.exists(args.model):
            raise PeerError(f"cannot read model {args.model}: no such file")
        import openvino as ov

        self.version = ov.get_version().split("-")[0]  # "2026.4.1-22982-e213a147257-releases/2026/4"
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if args.threads is not None:
            config["INFERENCE_NUM_THREADS"] = args.threads
        if f32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        # OpenVINO reads the ONNX file itself (its ONNX frontend), as its users are told to. On a file
        # that is no model it tries its other frontends, whose libraries log to stderr: silenced, so that an
        # error stays our one line (it reaches us as the exception).
        with stderr_silenced():
            self.compiled = core.compile_model(args.model, "CPU", config)
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: f32, bf16, f16
        self.precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        # A port carries every name its tensor has (an Identity's input and output merge): the graph
        # output's own name is found in the ONNX file, read lazily since only `run` writes outputs.
        self.model_path = args.model
        self._output_names = None

    @property
    def output_names(self):
        if self._output_names is None:
            import onnx

            graph_outputs = [o.name for o in onnx.load(self.model_path, load_external_data=False).graph.output]
            names = []
            for i, port in enumerate(self.compiled.outputs):
                port_names = port.get_names()
                if i < len(graph_outputs) and graph_outputs[i] in port_names:
                    names.append(graph_outputs[i])
                else:
                    found = [n for n in graph_outputs if n in port_names]
                    if not found:
                        raise PeerError(f"OpenVINO output {i} ({sorted(port_names)}) is none of the graph's outputs")
                    names.append(found[0])
            self._output_names = names
        return self._output_names

    def run(self, feeds):
        # share_inputs: the request reads the caller's arrays in place, as ORT and kiln do.
        results = self.request.infer(feeds, share_inputs=True)
        return [results[port] for port in self.compiled.outputs]


def import_engine(engine):
    __import__("onnxruntime" if engine == "ort" else "openvino")


def make_engine(args):
    if args.engine == "ort":
        return OrtEngine(args)
    return OpenVinoEngine(args, f32=args.engine == "openvino-f32")


def run_once(args):
    engine = make_engine(args)
    feeds = read_feeds(engine.input_names, args.input_dir)
    results = engine.run(feeds)
    os.makedirs(args.output_dir, exist_ok=True)
    for name, value in zip(engine.output_names, results):
        write_npy(os.path.join(args.output_dir, file_stem(name) + ".npy"), value)


def bench(args):
    # The engine's Python module is imported before the clock starts: load_ms is session creation (read,
    # optimize, compile), as kiln's is, not the 0.2-0.3 s that importing the module takes.
    import_engine(args.engine)
    t0 = time.perf_counter()
    engine = make_engine(args)
    load_ms = (time.perf_counter() - t0) * 1e3
    feeds = read_feeds(engine.input_names, args.input_dir)

    def timed():
        t = time.perf_counter()
        engine.run(feeds)
        return (time.perf_counter() - t) * 1e3

    # The first call is reported on its own: it pays for lazy work that later calls reuse.
    first_ms = timed()
    for _ in range(args.warmup):
        timed()
    latencies = []
    start = time.perf_counter()
    if args.duration is not None:
        end = start + args.duration
        while True:
            latencies.append(timed())
            if time.perf_counter() >= end:
                break
    else:
        for _ in range(args.iterations):
            latencies.append(timed())
    total_ms = (time.perf_counter() - start) * 1e3

    s = sorted(latencies)

    def pct(p):  # nearest rank, as kiln bench computes it: always one of the measured values
        import math

        return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]

    r = lambda x: round(x, 3)  # noqa: E731
    report = {
        "engine": args.engine,
        "version": engine.version,
        "precision": engine.precision,
        "load_ms": r(load_ms),
        "first_ms": r(first_ms),
        "iterations": len(latencies),
        "total_ms": r(total_ms),
        "latencies_ms": [r(x) for x in latencies],
        "min_ms": r(s[0]),
        "p50_ms": r(pct(50)),
        "p90_ms": r(pct(90)),
        "p95_ms": r(pct(95)),
        "p99_ms": r(pct(99)),
        "max_ms": r(s[-1]),
        "mean_ms": r(sum(latencies) / len(latencies)),
        "peak_rss_mb": r(peak_rss_mb()),
    }
    sys.stdout.write(json.dumps(report) + "\n")


def versions(_args):
    out = {}
    for module, key in (("onnxruntime", "onnxruntime"), ("openvino", "openvino"), ("onnx", "onnx"), ("numpy", "numpy")):
        try:
            m = __import__(module)
            out[key] = m.get_version() if module == "openvino" else m.__version__
        except ImportError:
            out[key] = None
    sys.stdout.write(json.dumps(out) + "\n")


def positive_int(minimum):
    def parse(text):
        if not re.fullmatch(r"\d+", text) or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum} (got \"{text}\")")
        return int(text)

    return parse


def seconds(text):
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f'must be a number of seconds > 0 (got "{text}")')
    return v


def parse_args(argv):
    parser = Parser(prog="peer.py", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", metavar="MODE", parser_class=Parser)
    run = modes.add_parser("run", help="one inference: DIR/NAME.npy in, OUT/NAME.npy out")
    bench_p = modes.add_parser("bench", help="time creation, the first call, W warmup and N timed calls; JSON out")
    modes.add_parser("versions", help="the installed versions of the peers, as JSON")
    for p in (run, bench_p):
        p.add_argument("model", metavar="MODEL.onnx")
        p.add_argument("--input-dir", required=True, help="each input NAME is read from DIR/NAME.npy")
        p.add_argument("--engine", choices=ENGINES, default="ort", help="which peer runs it (default: ort)")
        p.add_argument("--threads", type=positive_int(1),
                       help="intra-op threads (inter-op: 1); default: the engine's choice")
        p.add_argument("--opt-level", choices=ORT_LEVELS, default="all",
                       help="ONNX Runtime's graph optimization level (default: all)")
    run.add_argument("--output-dir", required=True, help="each output NAME is written as OUT/NAME.npy")
    run.add_argument("--optimized-model-out", help="ort: save the graph ONNX Runtime's optimizer produced")
    bench_p.add_argument("--warmup", type=positive_int(0), default=3, help="untimed calls (default 3)")
    timing = bench_p.add_mutually_exclusive_group()
    timing.add_argument("--iterations", type=positive_int(1), default=20, help="timed calls (default 20)")
    timing.add_argument("--duration", type=seconds, help="timed calls until S seconds have passed (at least one)")
    args = parser.parse_args(argv)
    if args.mode is None:
        raise PeerError("no mode given: run, bench or versions (see --help)")
    return args


def main(argv):
    engine = "ort"
    try:
        args = parse_args(argv)
        engine = "openvino" if getattr(args, "engine", "ort").startswith("openvino") else "ort"
        {"run": run_once, "bench": bench, "versions": versions}[args.mode](args)
        return 0
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except ImportError as e:
        msg = f"{e} (the peers are installed by `make peers` into benchmarks/peers/.venv; run this script with its python)"
    except PeerError as e:
        msg = str(e)
    except Exception as e:  # the engine's own refusal: its message, on one line
        msg = f"{type(e).__name__}: {e}" if not str(e) else str(e)
    # OpenVINO nests "Exception from src/...cpp:N:" prefixes, one per layer it passed through: drop them.
    msg = re.sub(r"Exception from \S+:\d+:\s*", "", msg)
    sys.stderr.write(f"{engine}: error: " + re.sub(r"\s*\n\s*", " ", msg).strip() + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
