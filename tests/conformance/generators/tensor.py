#!/usr/bin/python3
# Extra conformance cases for layout ops newer than ONNX 1.12's test data: CenterCropPad and Col2Im
# (opset 18). Expected outputs are computed with numpy loops written from the ONNX operator spec,
# independently of kiln.
#
# Regenerate (Debian 12: apt-get install python3-onnx python3-numpy), from the repository root:
#   /usr/bin/python3 tests/conformance/generators/tensor.py
# Writes tests/conformance/extra/test_tensor_*; the committed files are the source of truth (CI never
# runs python), so commit the regenerated data and rerun
#   kiln conformance tests/conformance/extra --write-expected tests/conformance/extra_expected_pass.txt
import glob
import itertools
import os
import shutil

import numpy as np
from onnx import helper, numpy_helper, TensorProto as TP

FAMILY = 'tensor'
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'extra')
for old in glob.glob(os.path.join(ROOT, f'test_{FAMILY}_*')):
    shutil.rmtree(old)

NP2TP = {np.float32: TP.FLOAT, np.float16: TP.FLOAT16, np.float64: TP.DOUBLE, np.uint8: TP.UINT8, np.int8: TP.INT8,
         np.uint16: TP.UINT16, np.int16: TP.INT16, np.uint32: TP.UINT32, np.int32: TP.INT32, np.uint64: TP.UINT64,
         np.int64: TP.INT64, np.bool_: TP.BOOL}


def case(name, op, inputs, outputs, opset, **attrs):
    """inputs, outputs: lists of (name, array). Builds the ModelProto with onnx.helper but never runs
    onnx's checker: ONNX 1.12 does not know the opset-18+ ops written here."""
    d = os.path.join(ROOT, 'test_' + FAMILY + '_' + name)
    os.makedirs(os.path.join(d, 'test_data_set_0'))
    node = helper.make_node(op, [n for n, _ in inputs], [n for n, _ in outputs], **attrs)
    vi = lambda n, a: helper.make_tensor_value_info(n, NP2TP[a.dtype.type], a.shape)
    g = helper.make_graph([node], name, [vi(n, a) for n, a in inputs], [vi(n, a) for n, a in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])
    m.ir_version = 8
    with open(os.path.join(d, 'model.onnx'), 'wb') as f:
        f.write(m.SerializeToString())
    for kind, items in (('input', inputs), ('output', outputs)):
        for i, (n, a) in enumerate(items):
            with open(os.path.join(d, 'test_data_set_0', f'{kind}_{i}.pb'), 'wb') as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())


rng = np.random.default_rng(18)


# ---- CenterCropPad: per listed axis, crop centred when the target is smaller (start =
# floor((dim - target) / 2)), pad with zeros centred when it is larger (the input starts at
# floor((target - dim) / 2)).
def center_crop_pad(x, shape, axes=None):
    axes = [a % x.ndim for a in (axes if axes is not None else range(x.ndim))]
    target = list(x.shape)
    for a, s in zip(axes, shape):
        target[a] = int(s)
    y = np.zeros(target, x.dtype)
    src, dst = [], []
    for a in range(x.ndim):
        dim, t = x.shape[a], target[a]
        if t <= dim:
            b = (dim - t) // 2
            src.append(slice(b, b + t)); dst.append(slice(0, t))
        else:
            b = (t - dim) // 2
            src.append(slice(0, dim)); dst.append(slice(b, b + dim))
    y[tuple(dst)] = x[tuple(src)]
    return y
x = rng.standard_normal((6, 7, 3)).astype(np.float32)
s = np.array([3, 4, 3], np.int64)
case('center_crop_pad_crop_odd', 'CenterCropPad', [('x', x), ('shape', s)], [('y', center_crop_pad(x, s))], 18)
x = rng.standard_normal((3, 4, 2)).astype(np.float32)
s = np.array([6, 7, 2], np.int64)
case('center_crop_pad_pad_odd', 'CenterCropPad', [('x', x), ('shape', s)], [('y', center_crop_pad(x, s))], 18)
x = rng.integers(-100, 100, (2, 5, 8), dtype=np.int32)
s = np.array([4, 9], np.int64)
case('center_crop_pad_axes_mixed_int32', 'CenterCropPad', [('x', x), ('shape', s)], [('y', center_crop_pad(x, s, [-1, 1]))], 18, axes=[-1, 1])
x = rng.standard_normal((4, 5)).astype(np.float64)
s = np.array([4], np.int64)
case('center_crop_pad_axis0_same', 'CenterCropPad', [('x', x), ('shape', s)], [('y', center_crop_pad(x, s, [0]))], 18, axes=[0])


# ---- Col2Im: input [N, C * prod(block), L]; column c * prod(block) + k of block l adds to the
# image pixel at l_pos * stride - pad_begin + k_pos * dilation, where l_pos walks the sliding block
# positions and k_pos the block offsets, both in row-major order.
def col2im(x, image, block, dil, pads, strides):
    nd = len(image)
    n, ck, L = x.shape
    c = ck // int(np.prod(block))
    counts = [(image[i] + pads[i] + pads[i + nd] - (dil[i] * (block[i] - 1) + 1)) // strides[i] + 1 for i in range(nd)]
    assert int(np.prod(counts)) == L
    y = np.zeros((n, c, *image), np.float64)
    for li, lpos in enumerate(itertools.product(*[range(k) for k in counts])):
        for ki, kpos in enumerate(itertools.product(*[range(k) for k in block])):
            p = [lpos[i] * strides[i] - pads[i] + kpos[i] * dil[i] for i in range(nd)]
            if all(0 <= p[i] < image[i] for i in range(nd)):
                for ci in range(c):
                    y[(slice(None), ci) + tuple(p)] += x[:, ci * int(np.prod(block)) + ki, li]
    return y.astype(x.dtype)
def col2im_case(name, n, c, image, block, dil=None, pads=None, strides=None, dt=np.float32):
    nd = len(image)
    attrs = {}
    if dil: attrs['dilations'] = dil
    if pads: attrs['pads'] = pads
    if strides: attrs['strides'] = strides
    dil, pads, strides = dil or [1] * nd, pads or [0] * (2 * nd), strides or [1] * nd
    counts = [(image[i] + pads[i] + pads[i + nd] - (dil[i] * (block[i] - 1) + 1)) // strides[i] + 1 for i in range(nd)]
    x = rng.standard_normal((n, c * int(np.prod(block)), int(np.prod(counts)))).astype(dt)
    y = col2im(x, image, block, dil, pads, strides)
    case('col2im_' + name, 'Col2Im', [('x', x), ('image_shape', np.array(image, np.int64)), ('block_shape', np.array(block, np.int64))],
         [('y', y)], 18, **attrs)
col2im_case('basic', 1, 1, [5, 5], [1, 5])
col2im_case('strides_pads_dilations', 2, 3, [6, 7], [2, 3], dil=[2, 1], pads=[1, 0, 2, 1], strides=[2, 2])
col2im_case('overlap_double', 1, 2, [4, 5], [3, 2], dt=np.float64)
col2im_case('3d', 1, 2, [3, 4, 5], [2, 2, 3], strides=[1, 2, 1], pads=[0, 1, 1, 1, 0, 0])
