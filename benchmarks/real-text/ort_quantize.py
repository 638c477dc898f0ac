#!/usr/bin/env python3
"""ONNX Runtime's own int8 dynamic quantization of a model, the peer kiln's int8 is held against:

  ort_quantize.py IN.onnx OUT.onnx [--per-channel]

quantize_dynamic with int8 weights (QuantType.QInt8, ORT's default), per tensor unless --per-channel,
everything else at its defaults. Run it with the peers' venv python (make peers). On error: one line
"ort_quantize: error: ..." on stderr, exit status 2.
"""

import argparse
import logging
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("output")
    p.add_argument("--per-channel", action="store_true", help="one weight scale per output column")
    args = p.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process, on every run
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = args.output + ".tmp"
        quantize_dynamic(args.model, tmp, weight_type=QuantType.QInt8, per_channel=args.per_channel)
        os.replace(tmp, args.output)  # no partial output file on failure
    except Exception as e:  # noqa: BLE001  (one line, whatever ORT raised)
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"ort_quantize: error: {args.model}: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
