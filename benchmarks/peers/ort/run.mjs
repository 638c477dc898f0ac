#!/usr/bin/env node
// ONNX Runtime (CPU) as kiln's reference peer. It speaks kiln's exchange format (.npy files in, .npy
// files out) so that tests and `kiln bench --vs ort` can drive it like they drive `kiln run`.
//
//   node run.mjs run MODEL.onnx --input-dir DIR --output-dir DIR [--threads N] [--opt-level L]
//                               [--optimized-model-out PATH]
//   node run.mjs bench MODEL.onnx --input-dir DIR [--threads N] [--warmup W] [--iterations N | --duration S]
//                                 [--opt-level L]
//
// ONNX Runtime comes from npm (onnxruntime-node, installed with --ignore-scripts: the CPU library ships
// inside the package) because this machine has no PyPI. Install it with `make peers`.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const USAGE = `usage:
  node run.mjs run MODEL.onnx --input-dir DIR --output-dir DIR [options]
      One inference; each input NAME is read from DIR/NAME.npy, each output written as OUT/NAME.npy.
      --optimized-model-out PATH   save the graph ONNX Runtime's optimizer produced
  node run.mjs bench MODEL.onnx --input-dir DIR [options] [--warmup W] [--iterations N | --duration S]
      Times session creation, the first run, W warmup runs (default 3) and N timed runs (default 20), or
      timed runs until S seconds have passed (at least one); prints one JSON object with every run's
      latency (latencies_ms) and the wall time of the timed runs (total_ms).
options:
  --threads N        intra-op threads (inter-op threads are then 1); default: ONNX Runtime's choice
  --opt-level L      graph optimization level: disabled, basic, extended or all (default: all)
On error: one line "ort: error: ..." on stderr, exit status 2.`;

// Thrown for anything the caller got wrong or ORT refused; main() turns it into the one-line error.
class UsageError extends Error {}
const fail = (msg) => {
  throw new UsageError(msg);
};

// ---- .npy (NumPy's format: magic, version, a Python-dict header, then raw little-endian C-order data) ----

// descr -> ORT tensor type and the typed array holding it. bool is one byte per element in both
// formats; float16 has no JS array type in Node 20, so its bits travel as Uint16.
const DTYPES = [
  { descr: 'f4', ort: 'float32', Array: Float32Array },
  { descr: 'f8', ort: 'float64', Array: Float64Array },
  { descr: 'i8', ort: 'int64', Array: BigInt64Array },
  { descr: 'i4', ort: 'int32', Array: Int32Array },
  { descr: 'i2', ort: 'int16', Array: Int16Array },
  { descr: 'i1', ort: 'int8', Array: Int8Array },
  { descr: 'u8', ort: 'uint64', Array: BigUint64Array },
  { descr: 'u4', ort: 'uint32', Array: Uint32Array },
  { descr: 'u2', ort: 'uint16', Array: Uint16Array },
  { descr: 'u1', ort: 'uint8', Array: Uint8Array },
  { descr: 'b1', ort: 'bool', Array: Uint8Array },
  { descr: 'f2', ort: 'float16', Array: Uint16Array },
];

const MAGIC = Buffer.from([0x93, ...Buffer.from('NUMPY')]);

function readNpy(path) {
  let buf;
  try {
    buf = readFileSync(path);
  } catch (e) {
    fail(`cannot read ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) fail(`${path}: not a .npy file`);
  const major = buf[6];
  // Version 1 has a 2-byte header length; 2 and 3 (3 only allows UTF-8 in the header) have 4 bytes.
  let headerLen, start;
  if (major === 1) [headerLen, start] = [buf.readUInt16LE(8), 10];
  else if (major === 2 || major === 3) [headerLen, start] = [buf.readUInt32LE(8), 12];
  else fail(`${path}: unsupported .npy version ${major}.${buf[7]}`);
  if (start + headerLen > buf.length) fail(`${path}: truncated header`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen);

  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    fail(`${path}: malformed header ${JSON.stringify(header.trim())}`);
  if (fortran === 'True') fail(`${path}: Fortran-order arrays are not supported (save with C order)`);
  // '<' little-endian, '|' byte order irrelevant (1-byte types), '=' native (little on the CPUs we run).
  const m = /^([<|=])([a-z]\d+)$/.exec(descr);
  const dtype = m && DTYPES.find((d) => d.descr === m[2]);
  if (!dtype) fail(`${path}: unsupported dtype '${descr}' (little-endian numeric or bool only)`);
  const dims = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      if (!/^\d+$/.test(s)) fail(`${path}: bad shape (${shapeText})`);
      return Number(s);
    });

  const count = dims.reduce((a, b) => a * b, 1);
  const bytes = count * dtype.Array.BYTES_PER_ELEMENT;
  const dataStart = start + headerLen;
  if (buf.length - dataStart !== bytes)
    fail(`${path}: ${buf.length - dataStart} data bytes for shape (${dims.join(', ')}) of ${descr} (${bytes} expected)`);
  // Copy into a fresh ArrayBuffer: the data offset in the file need not be aligned for the typed array.
  const data = new dtype.Array(count);
  new Uint8Array(data.buffer).set(buf.subarray(dataStart));
  return { type: dtype.ort, data, dims };
}

function serializeNpy(type, dims, data) {
  const dtype = DTYPES.find((d) => d.ort === type);
  if (!dtype) fail(`output of type ${type} cannot be written as .npy`);
  const descr = (dtype.Array.BYTES_PER_ELEMENT === 1 ? '|' : '<') + dtype.descr;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad with spaces and a final newline so the data starts on a 64-byte boundary, as NumPy does.
  const pad = (n) => ' '.repeat((64 - ((n + header.length + 1) % 64)) % 64) + '\n';
  let prefix;
  if (10 + header.length + 64 <= 0xffff) {
    header += pad(10);
    prefix = Buffer.from([...MAGIC, 1, 0, 0, 0]);
    prefix.writeUInt16LE(header.length, 8);
  } else {
    header += pad(12);
    prefix = Buffer.from([...MAGIC, 2, 0, 0, 0, 0, 0]);
    prefix.writeUInt32LE(header.length, 8);
  }
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), bytes]);
}

// Writes to a temporary name and renames, so a reader never sees a half-written file (as kiln does).
function writeNpy(path, tensor) {
  const bytes = serializeNpy(tensor.type, tensor.dims, tensor.data);
  writeFileSync(path + '.tmp', bytes);
  renameSync(path + '.tmp', path);
}

// Tensor names become file names: characters outside [A-Za-z0-9._-] are replaced by '_' (kiln's rule).
function fileStem(name) {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return s === '' || s === '.' || s === '..' ? '_' + s : s;
}

// ---- command line ----

const FLAGS = {
  run: ['--input-dir', '--output-dir', '--threads', '--opt-level', '--optimized-model-out'],
  bench: ['--input-dir', '--threads', '--warmup', '--iterations', '--duration', '--opt-level'],
};

function parseArgs(argv) {
  const [mode, ...rest] = argv;
  if (!(mode in FLAGS)) fail(mode ? `unknown mode "${mode}" (run or bench; see --help)` : 'no mode given (see --help)');
  const args = { mode, model: undefined };
  for (let i = 0; i < rest.length; ++i) {
    const a = rest[i];
    if (a.startsWith('--')) {
      const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a];
      if (!FLAGS[mode].includes(flag)) fail(`${mode}: unknown option ${flag}`);
      const value = inline ?? rest[++i];
      if (value === undefined) fail(`${flag} needs a value`);
      args[flag.slice(2)] = value;
    } else if (args.model === undefined) {
      args.model = a;
    } else {
      fail(`unexpected argument "${a}"`);
    }
  }
  if (args.model === undefined) fail(`${mode}: no model given`);
  if (args['input-dir'] === undefined) fail(`${mode}: --input-dir is required`);
  if (mode === 'run' && args['output-dir'] === undefined) fail('run: --output-dir is required');
  const levels = ['disabled', 'basic', 'extended', 'all'];
  args['opt-level'] ??= 'all';
  if (!levels.includes(args['opt-level']))
    fail(`--opt-level must be one of ${levels.join(', ')} (got "${args['opt-level']}")`);
  const count = (flag, min, dflt) => {
    const v = args[flag];
    if (v === undefined) return dflt;
    if (!/^\d+$/.test(v) || Number(v) < min) fail(`--${flag} must be an integer >= ${min} (got "${v}")`);
    return Number(v);
  };
  args.threads = count('threads', 1, undefined);
  args.warmup = count('warmup', 0, 3);
  if (args.duration !== undefined) {
    if (args.iterations !== undefined) fail('give --iterations or --duration, not both');
    const d = args.duration;
    if (!/^(\d+\.?\d*|\.\d+)$/.test(d) || !(Number(d) > 0))
      fail(`--duration must be a number of seconds > 0 (got "${d}")`);
    args.duration = Number(d);
  }
  args.iterations = count('iterations', 1, 20);
  return args;
}

// ---- ONNX Runtime ----

async function loadOrt() {
  // Imported late so that --help and argument errors work without node_modules.
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    fail(`onnxruntime-node is not installed next to run.mjs (run \`make peers\`): ${e.message}`);
  }
}

async function createSession(ort, args) {
  if (!existsSync(args.model)) fail(`cannot read model ${args.model}: no such file`);
  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: args['opt-level'],
    // ORT's own log goes to stderr; keep it to fatal messages so an error stays our one line
    // (errors reach us as exceptions anyway).
    logSeverityLevel: 4,
  };
  // Pinning intra-op threads and a single inter-op thread makes runs comparable with kiln --threads N.
  if (args.threads !== undefined) Object.assign(options, { intraOpNumThreads: args.threads, interOpNumThreads: 1 });
  if (args['optimized-model-out'] !== undefined) options.optimizedModelFilePath = args['optimized-model-out'];
  return ort.InferenceSession.create(args.model, options);
}

function readFeeds(ort, session, dir) {
  const feeds = {};
  for (const name of session.inputNames) {
    const path = join(dir, fileStem(name) + '.npy');
    if (!existsSync(path)) fail(`missing input "${name}": no ${path}`);
    const t = readNpy(path);
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  return feeds;
}

async function runOnce(ort, args) {
  const session = await createSession(ort, args);
  const results = await session.run(readFeeds(ort, session, args['input-dir']));
  mkdirSync(args['output-dir'], { recursive: true });
  for (const name of session.outputNames) writeNpy(join(args['output-dir'], fileStem(name) + '.npy'), results[name]);
  await session.release();
}

// Peak RSS of this process in MiB. VmHWM belongs to this process's own address space; getrusage's
// maxRSS is not usable here: Linux carries it across exec, so a child spawned by a big parent (kiln bench
// with a model loaded) would report the parent's peak.
function peakRssMb() {
  try {
    const m = /^VmHWM:\s*(\d+)\s*kB/m.exec(readFileSync('/proc/self/status', 'latin1'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux: fall back to getrusage
  }
  return process.resourceUsage().maxRSS / 1024;
}

async function bench(ort, args) {
  const t0 = performance.now();
  const session = await createSession(ort, args);
  const loadMs = performance.now() - t0;
  const feeds = readFeeds(ort, session, args['input-dir']);
  const timed = async () => {
    const t = performance.now();
    await session.run(feeds);
    return performance.now() - t;
  };
  // The first run is reported on its own: it pays for lazy allocations that later runs reuse.
  const firstMs = await timed();
  for (let i = 0; i < args.warmup; ++i) await timed();
  const latencies = [];
  const start = performance.now();
  if (args.duration !== undefined) {
    const end = start + args.duration * 1000;
    do latencies.push(await timed());
    while (performance.now() < end);
  } else {
    for (let i = 0; i < args.iterations; ++i) latencies.push(await timed());
  }
  const totalMs = performance.now() - start;
  await session.release();

  const sorted = [...latencies].sort((a, b) => a - b);
  // Nearest-rank percentile: always one of the measured values (kiln bench uses the same definition, and
  // computes its figures itself from latencies_ms).
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  const round = (x) => Math.round(x * 1000) / 1000;
  const report = {
    load_ms: round(loadMs),
    first_ms: round(firstMs),
    iterations: latencies.length,
    total_ms: round(totalMs),
    latencies_ms: latencies.map(round),
    min_ms: round(sorted[0]),
    p50_ms: round(pct(50)),
    p90_ms: round(pct(90)),
    p95_ms: round(pct(95)),
    p99_ms: round(pct(99)),
    max_ms: round(sorted[sorted.length - 1]),
    mean_ms: round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
    peak_rss_mb: round(peakRssMb()),
    ort_version: ort.env.versions.node ?? ort.env.versions.common,
  };
  process.stdout.write(JSON.stringify(report) + '\n');
}

async function main(argv) {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const args = parseArgs(argv);
  const ort = await loadOrt();
  await (args.mode === 'run' ? runOnce(ort, args) : bench(ort, args));
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  // ORT's messages can span lines; callers expect exactly one.
  const msg = String(e instanceof Error ? e.message : e).replace(/\s*\n\s*/g, ' ').trim();
  process.stderr.write(`ort: error: ${msg}\n`);
  process.exitCode = 2;
}
