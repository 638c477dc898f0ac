#!/usr/bin/python3
# Extra conformance cases for ops newer than ONNX 1.12's test data: StringConcat, StringSplit,
# RegexFullMatch and AffineGrid (opset 20) and DeformConv (opset 19). Expected outputs are computed
# with numpy / plain Python from the ONNX operator spec, independently of kiln.
#
# Regenerate (Debian 12: apt-get install python3-onnx python3-numpy), from the repository root:
#   /usr/bin/python3 tests/conformance/generators/opset20.py
# Writes tests/conformance/extra/test_opset20_*; the committed files are the source of truth (CI never
# runs python), so commit the regenerated data and rerun
#   kiln conformance tests/conformance/extra --write-expected tests/conformance/extra_expected_pass.txt
import glob
import os
import re
import shutil

import numpy as np
from onnx import helper, numpy_helper, TensorProto as TP

FAMILY = 'opset20'
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'extra')
for old in glob.glob(os.path.join(ROOT, f'test_{FAMILY}_*')):
    shutil.rmtree(old)

NP2TP = {np.float32: TP.FLOAT, np.float64: TP.DOUBLE, np.int64: TP.INT64, np.bool_: TP.BOOL, np.object_: TP.STRING}


def case(name, op, inputs, outputs, opset, **attrs):
    """inputs, outputs: lists of (name, array); an input named '' is an omitted optional input. Builds
    the ModelProto with onnx.helper but never runs onnx's checker: ONNX 1.12 does not know these ops."""
    d = os.path.join(ROOT, 'test_' + FAMILY + '_' + name)
    os.makedirs(os.path.join(d, 'test_data_set_0'))
    node = helper.make_node(op, [n for n, _ in inputs], [n for n, _ in outputs], **attrs)
    inputs = [(n, a) for n, a in inputs if n]
    vi = lambda n, a: helper.make_tensor_value_info(n, NP2TP[a.dtype.type], a.shape)
    g = helper.make_graph([node], name, [vi(n, a) for n, a in inputs], [vi(n, a) for n, a in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])
    m.ir_version = 9
    with open(os.path.join(d, 'model.onnx'), 'wb') as f:
        f.write(m.SerializeToString())
    for kind, items in (('input', inputs), ('output', outputs)):
        for i, (n, a) in enumerate(items):
            with open(os.path.join(d, 'test_data_set_0', f'{kind}_{i}.pb'), 'wb') as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())


def strings(values, shape=None):
    a = np.array(values, dtype=object)
    return a.reshape(shape) if shape is not None else a


rng = np.random.default_rng(20)

# ---- StringConcat (opset 20): elementwise X + Y with multidirectional broadcasting
x = strings(['a', 'bc', '', 'déf', 'g', 'hi'], (2, 3))
y = strings(['1', '', '_z'])
case('string_concat_bcast', 'StringConcat', [('x', x), ('y', y)], [('z', x + y)], 20)
x = strings(['abc', 'ж', ' '], (3, 1))
y = strings(['-', '--'], (1, 2))
case('string_concat_outer', 'StringConcat', [('x', x), ('y', y)], [('z', x + y)], 20)
x = strings(['same'], ())
y = strings(['x', 'y', 'z', ''], (2, 2))
case('string_concat_scalar', 'StringConcat', [('x', x), ('y', y)], [('z', x + y)], 20)


# ---- StringSplit (opset 20): Python's str.split(delimiter or None, maxsplit); Y padded with '' to the
# largest count, shape X.shape + [max]; Z the counts.
def string_split(x, delimiter=None, maxsplit=None):
    parts = [s.split(delimiter or None, -1 if maxsplit is None else maxsplit) for s in x.reshape(-1)]
    widest = max(len(p) for p in parts)
    y = np.array([p + [''] * (widest - len(p)) for p in parts], dtype=object).reshape(x.shape + (widest,))
    z = np.array([len(p) for p in parts], dtype=np.int64).reshape(x.shape)
    return y, z


x = strings(['a,b,c', 'one', ',,', '', 'x,,y', 'tail,'], (2, 3))
case('string_split_delimiter', 'StringSplit', [('x', x)], list(zip(('y', 'z'), string_split(x, ','))),
     20, delimiter=',')
x = strings(['  hello   world ', 'a\tb\nc', '   ', 'single'])
case('string_split_whitespace', 'StringSplit', [('x', x)], list(zip(('y', 'z'), string_split(x))), 20)
x = strings(['a--b--c--d', 'no delimiter', '--lead', 'a--b'], (2, 2))
case('string_split_maxsplit', 'StringSplit', [('x', x)], list(zip(('y', 'z'), string_split(x, '--', 2))), 20,
     delimiter='--', maxsplit=2)
x = strings(['  lots  of   space here ', 'two words', ''])
case('string_split_whitespace_maxsplit', 'StringSplit', [('x', x)],
     list(zip(('y', 'z'), string_split(x, None, 1))), 20, maxsplit=1)


# ---- RegexFullMatch (opset 20): whether each whole string matches the pattern (patterns here are in
# the subset RE2 and ECMAScript read alike).
def regex_full_match(x, pattern):
    r = re.compile(pattern)
    return np.array([r.fullmatch(s) is not None for s in x.reshape(-1)], dtype=np.bool_).reshape(x.shape)


x = strings(['www.google.com', 'www.facebook.com', 'www.bbc.co.uk', 'google.com', 'www.x.com/path', ''], (2, 3))
p = r'www\.[\w.-]+\.\bcom\b'
case('regex_full_match_url', 'RegexFullMatch', [('x', x)], [('y', regex_full_match(x, p))], 20, pattern=p)
x = strings(['account@gmail.com', 'account@hotmail.com', 'not email', 'a@b.co', 'Account@Gmail.com'])
p = r'[a-z]+@(gmail|hotmail)\.com'
case('regex_full_match_email', 'RegexFullMatch', [('x', x)], [('y', regex_full_match(x, p))], 20, pattern=p)
x = strings(['2024-01-31', '24-1-31', '2024-13-01x', '1999-12-01'], (2, 2))
p = r'\d{4}-(0[1-9]|1[0-2])-\d{2}'
case('regex_full_match_date', 'RegexFullMatch', [('x', x)], [('y', regex_full_match(x, p))], 20, pattern=p)


# ---- AffineGrid (opset 20): grid[n, (d,) h, w] = theta[n] @ (x_w, y_h, (z_d,) 1), base coordinates
# -1 + (2i+1)/L, or -1 + 2i/(L-1) with align_corners.
def base(length, align):
    i = np.arange(length, dtype=np.float64)
    return -1 + 2 * i / (length - 1) if align else -1 + (2 * i + 1) / length


def affine_grid(theta, size, align):
    sp = size[2:]
    axes = [base(s, align) for s in sp]
    mesh = np.meshgrid(*axes, indexing='ij')  # one array per spatial axis, in size order
    pts = np.stack(list(reversed(mesh)) + [np.ones(tuple(sp))], axis=-1)  # (x, y[, z], 1)
    out = np.einsum('nrc,...c->n...r', theta.astype(np.float64), pts)
    return out.astype(theta.dtype)


for name, dt, n_sp, size, align in [('2d', np.float32, 2, [2, 3, 4, 5], 0), ('2d_align_corners', np.float32, 2,
                                    [1, 1, 3, 6], 1), ('3d', np.float64, 3, [2, 1, 3, 4, 2], 0),
                                    ('3d_align_corners', np.float32, 3, [1, 2, 2, 3, 4], 1)]:
    theta = rng.uniform(-1.5, 1.5, (size[0], n_sp, n_sp + 1)).astype(dt)
    size = np.array(size, dtype=np.int64)
    case(f'affine_grid_{name}', 'AffineGrid', [('theta', theta), ('size', size)],
         [('grid', affine_grid(theta, list(size), align))], 20, align_corners=align)


# ---- DeformConv (opset 19), 2-D: each kernel tap reads X bilinearly (zero outside) at its regular
# position plus its offset (dh, dw), times the mask; offset [N, offset_group*kH*kW*2, oH, oW].
def bilinear(plane, h, w):
    ih, iw = plane.shape
    h0, w0 = int(np.floor(h)), int(np.floor(w))
    total = 0.0
    for hh, wh in ((h0, 1 - (h - h0)), (h0 + 1, h - h0)):
        for ww, ww_w in ((w0, 1 - (w - w0)), (w0 + 1, w - w0)):
            if 0 <= hh < ih and 0 <= ww < iw:
                total += wh * ww_w * plane[hh, ww]
    return total


def deform_conv(x, w, offset, b=None, mask=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
                offset_group=1):
    n, c, ih, iw = x.shape
    oc, cg, kh, kw = w.shape
    oh, ow = offset.shape[2:]
    off = offset.astype(np.float64).reshape(n, offset_group, kh, kw, 2, oh, ow)
    msk = np.ones((n, offset_group, kh, kw, oh, ow)) if mask is None else mask.reshape(n, offset_group, kh, kw, oh, ow)
    y = np.zeros((n, oc, oh, ow))
    if b is not None:
        y += b.reshape(1, oc, 1, 1)
    ocg = oc // group
    for bi in range(n):
        for o in range(oc):
            for cl in range(cg):
                ci = (o // ocg) * cg + cl
                g = ci // (c // offset_group)
                for i in range(oh):
                    for j in range(ow):
                        for ki in range(kh):
                            for kj in range(kw):
                                h = i * strides[0] - pads[0] + ki * dilations[0] + off[bi, g, ki, kj, 0, i, j]
                                ww = j * strides[1] - pads[1] + kj * dilations[1] + off[bi, g, ki, kj, 1, i, j]
                                y[bi, o, i, j] += (w[o, cl, ki, kj] * msk[bi, g, ki, kj, i, j] *
                                                   bilinear(x[bi, ci].astype(np.float64), h, ww))
    return y.astype(x.dtype)


def out_dim(i, k, s, p0, p1, d):
    return (i + p0 + p1 - ((k - 1) * d + 1)) // s + 1


# Plain: 1 image, 1 channel, 2x2 kernel, no bias or mask.
x = rng.uniform(-1, 1, (1, 1, 3, 3)).astype(np.float32)
w = rng.uniform(-1, 1, (1, 1, 2, 2)).astype(np.float32)
off = rng.uniform(-1.5, 1.5, (1, 8, 2, 2)).astype(np.float32)
case('deform_conv_basic', 'DeformConv', [('x', x), ('w', w), ('offset', off)],
     [('y', deform_conv(x, w, off))], 19, kernel_shape=[2, 2])
# Bias, mask, padding and strides.
x = rng.uniform(-1, 1, (2, 3, 5, 4)).astype(np.float32)
w = rng.uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32)
oh, ow = out_dim(5, 3, 2, 1, 1, 1), out_dim(4, 3, 1, 1, 0, 1)
off = rng.uniform(-2, 2, (2, 18, oh, ow)).astype(np.float32)
b = rng.uniform(-1, 1, (2,)).astype(np.float32)
mask = rng.uniform(0, 1, (2, 9, oh, ow)).astype(np.float32)
case('deform_conv_bias_mask_pads_strides', 'DeformConv',
     [('x', x), ('w', w), ('offset', off), ('b', b), ('mask', mask)],
     [('y', deform_conv(x, w, off, b, mask, strides=(2, 1), pads=(1, 1, 1, 0)))], 19,
     strides=[2, 1], pads=[1, 1, 1, 0])
# Groups, offset groups and dilations, with the bias omitted but a mask given.
x = rng.uniform(-1, 1, (1, 4, 6, 6)).astype(np.float64)
w = rng.uniform(-1, 1, (6, 2, 2, 2)).astype(np.float64)
oh, ow = out_dim(6, 2, 1, 0, 0, 2), out_dim(6, 2, 1, 0, 0, 2)
off = rng.uniform(-1, 1, (1, 2 * 4 * 2, oh, ow)).astype(np.float64)
mask = rng.uniform(0, 1, (1, 2 * 4, oh, ow)).astype(np.float64)
case('deform_conv_groups_dilations', 'DeformConv', [('x', x), ('w', w), ('offset', off), ('', None), ('mask', mask)],
     [('y', deform_conv(x, w, off, None, mask, dilations=(2, 2), group=2, offset_group=2))], 19,
     dilations=[2, 2], group=2, offset_group=2, kernel_shape=[2, 2])
