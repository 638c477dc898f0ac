#!/usr/bin/python3
# Extra conformance cases for nn ops that ONNX 1.12's test data lacks or covers thinly: MatMul/Gemm
# broadcasting and integer types, Einsum forms, LpPool/GlobalLpPool, AveragePool dilations (opset 19),
# MaxPool int8 with storage_order, Conv/ConvTranspose groups, dilations, pads and auto_pad, Resize
# (opsets 10-19: antialias, axes, keep_aspect_ratio_policy, coordinate modes), GridSample (opset 16
# and 20, 2-D and 3-D). Expected outputs come from numpy loops written from the ONNX spec, or from a
# port of ONNX's newer Python reference (onnx/reference/ops/op_resize.py, op_grid_sample.py),
# independently of kiln.
#
# Regenerate (Debian 12: apt-get install python3-onnx python3-numpy), from the repository root:
#   /usr/bin/python3 tests/conformance/generators/nn.py
# Writes tests/conformance/extra/test_nn_*; the committed files are the source of truth (CI never
# runs python), so commit the regenerated data and rerun
#   kiln conformance tests/conformance/extra --write-expected tests/conformance/extra_expected_pass.txt
import glob
import os
import shutil

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'extra')
for old in glob.glob(os.path.join(OUT, 'test_nn_*')):
    shutil.rmtree(old)


# ---- Resize reference: # Port of the ONNX reference Resize (onnx/reference/ops/op_resize.py, recursive path).

def _nearest_coeffs(ratio, mode="round_prefer_floor"):
    if isinstance(ratio, int) or ratio.is_integer():
        return np.array([0, 1])
    if mode == "round_prefer_floor": return np.array([ratio <= 0.5, ratio > 0.5])
    if mode == "round_prefer_ceil": return np.array([ratio < 0.5, ratio >= 0.5])
    if mode == "floor": return np.array([1, 0])
    if mode == "ceil": return np.array([0, 1])
    raise ValueError(mode)

def _cubic_coeffs(ratio, scale=None, A=-0.75):
    return np.array([
        ((A * (ratio + 1) - 5 * A) * (ratio + 1) + 8 * A) * (ratio + 1) - 4 * A,
        ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1,
        ((A + 2) * (1 - ratio) - (A + 3)) * (1 - ratio) * (1 - ratio) + 1,
        ((A * ((1 - ratio) + 1) - 5 * A) * ((1 - ratio) + 1) + 8 * A) * ((1 - ratio) + 1) - 4 * A])

def _cubic_coeffs_antialias(ratio, scale, A=-0.75):
    scale = min(scale, 1.0)
    def cc(x):
        x = abs(x); x2 = x * x; x3 = x * x2
        if x <= 1: return (A + 2) * x3 - (A + 3) * x2 + 1
        if x < 2: return A * x3 - 5 * A * x2 + 8 * A * x - 4 * A
        return 0.0
    i_start = int(np.floor(-2 / scale) + 1)
    i_end = 2 - i_start
    c = [cc(scale * (i - ratio)) for i in range(i_start, i_end)]
    return np.array(c) / sum(c)

def _linear_coeffs(ratio, scale=None):
    return np.array([1 - ratio, ratio])

def _linear_coeffs_antialias(ratio, scale):
    scale = min(scale, 1.0)
    start = int(np.floor(-1 / scale) + 1)
    footprint = 2 - 2 * start
    args = (np.arange(start, start + footprint) - ratio) * scale
    c = np.clip(1 - np.abs(args), 0, 1)
    return np.array(c) / sum(c)

def _get_neighbor_idxes(x, n, limit):
    idxes = sorted(range(limit), key=lambda idx: (abs(x - idx), idx))[:n]
    return np.array(sorted(idxes))

def _get_neighbor(x, n, data):
    pad_width = int(np.ceil(n / 2))
    padded = np.pad(data, pad_width, mode="edge")
    x += pad_width
    idxes = _get_neighbor_idxes(x, n, len(padded))
    return idxes - pad_width, padded[idxes]

def _interp1d(data, scale_factor, output_width_int, x, get_coeffs, roi=None, extrapolation_value=0.0,
              coordinate_transformation_mode="half_pixel", exclude_outside=False):
    input_width = len(data)
    output_width = scale_factor * input_width
    m = coordinate_transformation_mode
    if m == "align_corners":
        x_ori = 0.0 if output_width == 1 else x * (input_width - 1) / (output_width - 1)
    elif m == "asymmetric":
        x_ori = x / scale_factor
    elif m == "tf_crop_and_resize":
        if output_width == 1:
            x_ori = (roi[1] - roi[0]) * (input_width - 1) / 2
        else:
            x_ori = x * (roi[1] - roi[0]) * (input_width - 1) / (output_width - 1)
        x_ori += roi[0] * (input_width - 1)
        if x_ori < 0 or x_ori > input_width - 1:
            return np.array(extrapolation_value)
    elif m == "pytorch_half_pixel":
        x_ori = -0.5 if output_width == 1 else (x + 0.5) / scale_factor - 0.5
    elif m == "half_pixel":
        x_ori = (x + 0.5) / scale_factor - 0.5
    elif m == "half_pixel_symmetric":
        adjustment = output_width_int / output_width
        center = input_width / 2
        offset = center * (1 - adjustment)
        x_ori = offset + (x + 0.5) / scale_factor - 0.5
    else:
        raise ValueError(m)
    x_ori = float(x_ori)
    x_ori_int = int(np.floor(x_ori))
    ratio = 1 if x_ori.is_integer() else x_ori - x_ori_int
    coeffs = get_coeffs(ratio, scale_factor).astype(np.float64)
    n = len(coeffs)
    idxes, points = _get_neighbor(x_ori, n, data)
    if exclude_outside:
        for i, idx in enumerate(idxes):
            if idx < 0 or idx >= input_width:
                coeffs[i] = 0
        coeffs /= sum(coeffs)
    return np.dot(coeffs, points).item()

def _interpnd(data, n, scale_factors, output_size, x, get_coeffs, roi=None, **kw):
    if n == 1:
        return _interp1d(data, scale_factors[0], output_size[0], x[0], get_coeffs, roi=roi, **kw)
    res = []
    for i in range(data.shape[0]):
        res.append(_interpnd(data[i], n - 1, scale_factors[1:], output_size[1:], x[1:], get_coeffs,
                             roi=None if roi is None else np.concatenate([roi[1:n], roi[n + 1:]]), **kw))
    return _interp1d(np.array(res), scale_factors[0], output_size[0], x[0], get_coeffs,
                     roi=None if roi is None else [roi[0], roi[n]], **kw)

def _interpolate_nd(data, get_coeffs, output_size=None, scale_factors=None, roi=None,
                    keep_aspect_ratio_policy="stretch", **kw):
    r = len(data.shape)
    axes = list(range(r))
    if output_size is not None:
        scale_factors = [output_size[i] / data.shape[i] for i in range(r)]
        if keep_aspect_ratio_policy != "stretch":
            if keep_aspect_ratio_policy == "not_larger":
                scale = np.array(scale_factors)[axes].min()
            else:
                scale = np.array(scale_factors)[axes].max()
            scale_factors = [scale if i in axes else 1.0 for i in range(r)]
            output_size = [int(scale * data.shape[i] + 0.5) if i in axes else data.shape[i] for i in range(r)]
    else:
        output_size = (np.array(scale_factors, dtype=np.float64) * np.array(data.shape)).astype(int)
    ret = np.zeros(output_size, dtype=np.float64)
    for x in np.ndindex(*output_size):
        ret[x] = _interpnd(data.astype(np.float64), r, scale_factors, output_size, x, get_coeffs, roi=roi, **kw)
    return ret

def resize(X, roi, scales=None, sizes=None, antialias=0, axes=None, coordinate_transformation_mode="half_pixel",
           cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0, keep_aspect_ratio_policy="stretch",
           mode="nearest", nearest_mode="round_prefer_floor"):
    if mode == "nearest":
        fct = lambda x, s: _nearest_coeffs(x, mode=nearest_mode)
    elif mode == "cubic":
        f = _cubic_coeffs_antialias if antialias else _cubic_coeffs
        fct = lambda x, s: f(x, s, A=cubic_coeff_a)
    else:
        fct = _linear_coeffs_antialias if antialias else _linear_coeffs
    scales = None if scales is None else [float(s) for s in scales]
    sizes = None if sizes is None else [int(s) for s in sizes]
    kw = dict(keep_aspect_ratio_policy=keep_aspect_ratio_policy, exclude_outside=exclude_outside,
              coordinate_transformation_mode=coordinate_transformation_mode, extrapolation_value=extrapolation_value)
    if axes is None:
        return _interpolate_nd(X, fct, scale_factors=scales, output_size=sizes, roi=roi, **kw).astype(X.dtype)
    axes = [a % X.ndim for a in axes]
    not_axes = [a for a in range(X.ndim) if a not in axes]
    perm = tuple(not_axes + axes)
    reshaped = np.transpose(X, perm).reshape((-1, *[X.shape[a] for a in axes]))
    res = None
    for i in range(reshaped.shape[0]):
        out = _interpolate_nd(reshaped[i], fct, scale_factors=scales, output_size=sizes, roi=roi, **kw).astype(X.dtype)
        if res is None:
            res = np.empty((reshaped.shape[0], *out.shape), dtype=out.dtype)
        res[i] = out
    res = res.reshape(tuple(X.shape[a] for a in not_axes) + res[0].shape)
    inv = list(perm)
    for i, a in enumerate(perm):
        inv[a] = i
    return np.transpose(res, inv)


# ---- GridSample reference: # Port of the ONNX reference GridSample (onnx/reference/ops/op_grid_sample.py).

def denorm(n, length, ac):
    return (n + 1) / 2.0 * (length - 1) if ac else ((n + 1) * length - 1) / 2.0

def reflect(x, lo, hi):
    rng = hi - lo
    if x < lo:
        dx = lo - x; n = int(dx / rng); r = dx - n * rng
        return lo + r if n % 2 == 0 else hi - r
    if x > hi:
        dx = x - hi; n = int(dx / rng); r = dx - n * rng
        return hi - r if n % 2 == 0 else lo + r
    return x

def cubic_coeffs(x):
    a = -0.75; x = abs(x)
    return np.array([((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a,
                     ((a + 2) * x - (a + 3)) * x * x + 1,
                     ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1,
                     ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a])

def pixel(arr, idx, border, pm):
    nd = arr.ndim
    i = idx[0]; d = arr.shape[0]
    if pm == 'zeros':
        if not (0 <= i < d):
            return 0.0
    elif pm == 'border':
        i = min(max(i, 0), d - 1)
    else:
        i = int(reflect(i, border[0], border[nd]))
    if nd == 1:
        return arr[i]
    return pixel(arr[i], idx[1:], list(border[1:nd]) + list(border[1 + nd:]), pm)

def interp(data, x, border, pm, cubic):
    nd = data.ndim
    x0 = int(np.floor(x[0]))
    if cubic:
        idx = [x0 - 1, x0, x0 + 1, x0 + 2]; c = cubic_coeffs(x[0] - x0)
    else:
        idx = [x0, x0 + 1]; f = abs(x[0] - x0); c = np.array([1 - f, f])
    if nd == 1:
        v = [pixel(data, [i], border, pm) for i in idx]
    else:
        sub = [interp(data[j], x[1:], list(border[1:nd]) + list(border[1 + nd:]), pm, cubic) for j in range(data.shape[0])]
        sub = np.array(sub)
        v = [pixel(sub, [i], [border[0], border[nd]], pm) for i in idx]
    return float(np.dot(c, v))

def grid_sample(X, grid, mode='linear', padding_mode='zeros', align_corners=0):
    mode = {'bilinear': 'linear', 'bicubic': 'cubic'}.get(mode, mode)
    N, C = X.shape[:2]
    dims = X.shape[2:]
    nd = len(dims)
    Y = np.zeros((N, C, *grid.shape[1:-1]), dtype=np.float64)
    border = [0.0] * (2 * nd)
    for i in range(nd):
        border[i] = 0.0 if align_corners else -0.5
        border[i + nd] = dims[i] - 1.0 if align_corners else dims[i] - 0.5
    for n in range(N):
        for c in range(C):
            data = X[n, c].astype(np.float64)
            for ox in np.ndindex(*grid.shape[1:-1]):
                nx = grid[n][ox][::-1].astype(np.float64)
                x = np.array([denorm(v, dims[i], align_corners) for i, v in enumerate(nx)])
                if mode == 'nearest':
                    if nd == 3:
                        x = np.array([np.floor(v + 0.5) if v >= 0 else np.ceil(v - 0.5) for v in x])
                    else:
                        x = np.rint(x)
                for i, v in enumerate(x):
                    if v < border[i] or v > border[i + nd]:
                        if padding_mode == 'border':
                            x[i] = min(max(v, 0), dims[i] - 1)
                        elif padding_mode == 'reflection':
                            x[i] = reflect(v, border[i], border[i + nd])
                if mode == 'nearest':
                    Y[(n, c) + ox] = pixel(data, [int(v) for v in x], border, padding_mode)
                else:
                    Y[(n, c) + ox] = interp(data, list(x), border, padding_mode, mode == 'cubic')
    return Y.astype(X.dtype)


NP2ONNX = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE, np.int64: TensorProto.INT64,
           np.int32: TensorProto.INT32, np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8,
           np.float16: TensorProto.FLOAT16, np.uint32: TensorProto.UINT32, np.uint64: TensorProto.UINT64}


def case(name, op, inputs, outputs, attrs=None, opset=18, input_names=None, in_shapes=None, consts=None):
    """inputs: list of np arrays (None = omitted optional input), outputs: list of np arrays."""
    attrs = attrs or {}
    names = input_names or [f'x{i}' if a is not None else '' for i, a in enumerate(inputs)]
    inits = []
    graph_inputs = []
    feeds = []
    for i, (n, a) in enumerate(zip(names, inputs)):
        if a is None:
            continue
        if consts and i in consts:
            inits.append(numpy_helper.from_array(a, n))
            continue
        shape = in_shapes[i] if in_shapes and in_shapes[i] is not None else list(a.shape)
        graph_inputs.append(helper.make_tensor_value_info(n, NP2ONNX[a.dtype.type], shape))
        feeds.append((n, a))
    onames = [f'y{i}' for i in range(len(outputs))]
    node = helper.make_node(op, names, onames, **attrs)
    gouts = [helper.make_tensor_value_info(n, NP2ONNX[o.dtype.type], None) for n, o in zip(onames, outputs)]
    g = helper.make_graph([node], name, graph_inputs, gouts, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])
    m.ir_version = 8
    d = os.path.join(OUT, 'test_' + name)
    os.makedirs(os.path.join(d, 'test_data_set_0'))
    onnx.save(m, os.path.join(d, 'model.onnx'))
    for i, (n, a) in enumerate(feeds):
        with open(os.path.join(d, 'test_data_set_0', f'input_{i}.pb'), 'wb') as f:
            f.write(numpy_helper.from_array(a, n).SerializeToString())
    for i, (n, o) in enumerate(zip(onames, outputs)):
        with open(os.path.join(d, 'test_data_set_0', f'output_{i}.pb'), 'wb') as f:
            f.write(numpy_helper.from_array(o, n).SerializeToString())


rng = np.random.default_rng(0)
def rnd(*s, dt=np.float32):
    return rng.standard_normal(s).astype(dt)

# ---- MatMul / Gemm ----
a, b = rnd(3), rnd(3, 4)
case('nn_matmul_1d_2d', 'MatMul', [a, b], [np.matmul(a, b)])
a, b = rnd(2, 5, 3), rnd(3)
case('nn_matmul_3d_1d', 'MatMul', [a, b], [np.matmul(a, b)])
a, b = rnd(3), rnd(3)
case('nn_matmul_1d_1d', 'MatMul', [a, b], [np.array(np.matmul(a, b), dtype=np.float32)])
a, b = rnd(2, 1, 4, 3), rnd(5, 3, 2)
case('nn_matmul_bcast', 'MatMul', [a, b], [np.matmul(a, b)])
a, b = rng.integers(-50, 50, (2, 3, 4)).astype(np.int32), rng.integers(-50, 50, (4, 5)).astype(np.int32)
case('nn_matmul_int32', 'MatMul', [a, b], [np.matmul(a, b)])
a, b = rng.integers(0, 50, (3, 4)).astype(np.uint64), rng.integers(0, 50, (4, 2)).astype(np.uint64)
case('nn_matmul_uint64', 'MatMul', [a, b], [np.matmul(a, b)])
a, b = rnd(4, 3, dt=np.float64), rnd(5, 3, dt=np.float64)
case('nn_matmul_f64', 'MatMul', [a, b.T.copy()], [np.matmul(a, b.T)])
a, b = rnd(4, 3, dt=np.float16), rnd(3, 5, dt=np.float16)
case('nn_matmul_f16', 'MatMul', [a, b], [np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)])
a, b, c = rng.integers(-9, 9, (3, 4)).astype(np.int64), rng.integers(-9, 9, (5, 4)).astype(np.int64), rng.integers(-9, 9, (1, 5)).astype(np.int64)
case('nn_gemm_int64', 'Gemm', [a, b, c], [2 * a @ b.T + 3 * c], {'transB': 1, 'alpha': 2.0, 'beta': 3.0})
a, b = rnd(3, 4), rnd(4, 5)
case('nn_gemm_noc_opset13', 'Gemm', [a, b], [a @ b], opset=13)
a, b, c = rnd(3, 4), rnd(4, 5), rnd(5)
case('nn_gemm_opset6_bcast', 'Gemm', [a, b, c], [a @ b + c], {'broadcast': 1}, opset=6)

# ---- Einsum ----
def es(name, eq, *ops):
    case('nn_einsum_' + name, 'Einsum', list(ops), [np.einsum(eq, *ops).astype(ops[0].dtype)], {'equation': eq}, opset=12)
es('implicit', 'ij,jk', rnd(2, 3), rnd(3, 4))
es('implicit_order', 'ba', rnd(2, 3))
es('ellipsis', '...ij,...jk->...ik', rnd(2, 3, 4), rnd(1, 4, 5))
es('ellipsis_implicit', '...ij,...jk', rnd(2, 3, 4), rnd(2, 4, 5))
es('ellipsis_middle', 'i...j->j...i', rnd(2, 3, 4, 5))
es('diag', 'ii->i', rnd(4, 4))
es('trace', 'ii', rnd(4, 4))
es('three', 'ij,jk,kl->il', rnd(2, 3), rnd(3, 4), rnd(4, 2))
es('outer', 'i,j->ij', rnd(3), rnd(4))
es('int', 'ij,jk->ik', rng.integers(-5, 5, (3, 4)).astype(np.int64), rng.integers(-5, 5, (4, 2)).astype(np.int64))
es('spaces', 'ij , jk -> ki', rnd(2, 3), rnd(3, 4))
es('diag3', 'iij->ij', rnd(3, 3, 2))

# ---- LpPool / GlobalLpPool ----
def lppool_ref(x, k, s, pads, p, ceil=False, dil=None):
    n, c = x.shape[:2]
    sp = x.shape[2:]
    nd = len(sp)
    dil = dil or [1] * nd
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd] + 10) for i in range(nd)])
    outs = []
    for i in range(nd):
        eff = (k[i] - 1) * dil[i] + 1
        num = sp[i] + pads[i] + pads[i + nd] - eff
        o = (-(-num // s[i]) if ceil else num // s[i]) + 1
        if ceil and (o - 1) * s[i] >= sp[i] + pads[i]:
            o -= 1
        outs.append(o)
    y = np.zeros((n, c, *outs), dtype=np.float64)
    for idx in np.ndindex(*outs):
        sl = tuple(slice(idx[i] * s[i], idx[i] * s[i] + (k[i] - 1) * dil[i] + 1, dil[i]) for i in range(nd))
        win = xp[(slice(None), slice(None)) + sl].astype(np.float64)
        y[(slice(None), slice(None)) + idx] = np.sum(np.abs(win) ** p, axis=tuple(range(2, 2 + nd))) ** (1.0 / p)
    return y.astype(x.dtype)
x = rnd(1, 2, 5, 6)
case('nn_lppool_2d', 'LpPool', [x], [lppool_ref(x, [2, 3], [1, 2], [0, 1, 1, 0], 2)], {'kernel_shape': [2, 3], 'strides': [1, 2], 'pads': [0, 1, 1, 0]})
x = rnd(1, 2, 7)
case('nn_lppool_1d_p3', 'LpPool', [x], [lppool_ref(x, [3], [2], [0, 0], 3)], {'kernel_shape': [3], 'strides': [2], 'p': 3})
x = rnd(1, 2, 7, 7)
case('nn_lppool_ceil_dil', 'LpPool', [x], [lppool_ref(x, [2, 2], [2, 2], [0, 0, 0, 0], 2, True, [2, 1])],
     {'kernel_shape': [2, 2], 'strides': [2, 2], 'ceil_mode': 1, 'dilations': [2, 1]})
x = rnd(2, 3, 4, 5)
case('nn_globallppool', 'GlobalLpPool', [x], [(np.sum(np.abs(x.astype(np.float64)) ** 3, axis=(2, 3), keepdims=True) ** (1 / 3)).astype(np.float32)], {'p': 3})
x = rnd(2, 3, 4, 5)
case('nn_globallppool_opset1', 'GlobalLpPool', [x], [(np.sum(np.abs(x.astype(np.float64)) ** 2, axis=(2, 3), keepdims=True) ** 0.5).astype(np.float32)], {'p': 2.0}, opset=1)

# ---- AveragePool dilations (opset 19), MaxPool int8 + storage order ----
def avgpool_dil(x, k, s, d):
    nd = len(k)
    sp = x.shape[2:]
    outs = [(sp[i] - ((k[i] - 1) * d[i] + 1)) // s[i] + 1 for i in range(nd)]
    y = np.zeros((*x.shape[:2], *outs), dtype=np.float64)
    for idx in np.ndindex(*outs):
        sl = tuple(slice(idx[i] * s[i], idx[i] * s[i] + (k[i] - 1) * d[i] + 1, d[i]) for i in range(nd))
        y[(slice(None), slice(None)) + idx] = x[(slice(None), slice(None)) + sl].mean(axis=tuple(range(2, 2 + nd)))
    return y.astype(x.dtype)
x = rnd(1, 2, 7, 8)
case('nn_averagepool_dilations', 'AveragePool', [x], [avgpool_dil(x, [2, 3], [1, 2], [2, 2])], {'kernel_shape': [2, 3], 'strides': [1, 2], 'dilations': [2, 2]}, opset=19)
x = rng.integers(-128, 127, (1, 1, 4, 4)).astype(np.int8)
y = np.zeros((1, 1, 2, 2), np.int8); ind = np.zeros((1, 1, 2, 2), np.int64)
for i in range(2):
    for j in range(2):
        w = x[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        y[0, 0, i, j] = w.max()
        r, c = np.unravel_index(np.argmax(w), (2, 2))
        ind[0, 0, i, j] = (2 * j + c) * 4 + (2 * i + r)
case('nn_maxpool_int8_colmajor', 'MaxPool', [x], [y, ind], {'kernel_shape': [2, 2], 'strides': [2, 2], 'storage_order': 1}, opset=12)

# ---- Conv: groups, dilations, asymmetric pads, 3D, SAME_LOWER ----
def conv_ref(x, w, b, s, pads, d, g):
    n, c = x.shape[:2]
    m = w.shape[0]
    nd = x.ndim - 2
    k = w.shape[2:]
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    outs = [(xp.shape[2 + i] - ((k[i] - 1) * d[i] + 1)) // s[i] + 1 for i in range(nd)]
    y = np.zeros((n, m, *outs))
    cg, mg = c // g, m // g
    for oi in np.ndindex(*outs):
        sl = tuple(slice(oi[i] * s[i], oi[i] * s[i] + (k[i] - 1) * d[i] + 1, d[i]) for i in range(nd))
        for mi in range(m):
            gi = mi // mg
            win = xp[(slice(None), slice(gi * cg, (gi + 1) * cg)) + sl]
            y[(slice(None), mi) + oi] = np.sum(win * w[mi].astype(np.float64), axis=tuple(range(1, 2 + nd)))
    if b is not None:
        y += b.reshape((1, m) + (1,) * nd)
    return y.astype(x.dtype)
x, w, b = rnd(2, 4, 6, 7), rnd(6, 2, 3, 2), rnd(6)
case('nn_conv_group_dil_pads', 'Conv', [x, w, b], [conv_ref(x, w, b, [2, 1], [1, 0, 2, 1], [1, 2], 2)],
     {'group': 2, 'strides': [2, 1], 'pads': [1, 0, 2, 1], 'dilations': [1, 2]})
x, w = rnd(1, 2, 4, 5, 3), rnd(3, 2, 2, 3, 2)
case('nn_conv_3d_valid', 'Conv', [x, w], [conv_ref(x, w, None, [1, 2, 1], [0] * 6, [1, 1, 1], 1)], {'auto_pad': 'VALID', 'strides': [1, 2, 1]})
x, w = rnd(1, 1, 5, 5), rnd(1, 1, 2, 2)
# SAME_LOWER, stride 2: out = 3, total pad = (3-1)*2 + 2 - 5 = 1 -> begin 1
case('nn_conv_same_lower', 'Conv', [x, w], [conv_ref(x, w, None, [2, 2], [1, 1, 0, 0], [1, 1], 1)], {'auto_pad': 'SAME_LOWER', 'strides': [2, 2]})
x, w = rnd(1, 3, 5, 5, dt=np.float64), rnd(2, 3, 3, 3, dt=np.float64)
case('nn_conv_f64', 'Conv', [x, w], [conv_ref(x, w, None, [1, 1], [1, 1, 1, 1], [1, 1], 1)], {'pads': [1, 1, 1, 1]})

# ---- ConvTranspose group + dilation, compare to scatter reference ----
def convt_ref(x, w, b, s, pads, d, g, outpad):
    n, c = x.shape[:2]
    nd = x.ndim - 2
    mg = w.shape[1]
    m = mg * g
    k = w.shape[2:]
    full = [s[i] * (x.shape[2 + i] - 1) + outpad[i] + (k[i] - 1) * d[i] + 1 for i in range(nd)]
    y = np.zeros((n, m, *full))
    cg = c // g
    for ii in np.ndindex(*x.shape[2:]):
        for ki in np.ndindex(*k):
            o = tuple(ii[i] * s[i] + ki[i] * d[i] for i in range(nd))
            for ci in range(c):
                gi = ci // cg
                y[(slice(None), slice(gi * mg, (gi + 1) * mg)) + o] += x[(slice(None), ci) + ii][:, None] * w[(ci, slice(None)) + ki][None, :]
    sl = tuple(slice(pads[i], full[i] - pads[i + nd]) for i in range(nd))
    y = y[(slice(None), slice(None)) + sl]
    if b is not None:
        y += b.reshape((1, m) + (1,) * nd)
    return y.astype(x.dtype)
x, w, b = rnd(2, 4, 3, 4), rnd(4, 3, 3, 2), rnd(6)
case('nn_convtranspose_group_dil', 'ConvTranspose', [x, w, b], [convt_ref(x, w, b, [2, 3], [1, 0, 0, 1], [2, 1], 2, [1, 0])],
     {'group': 2, 'strides': [2, 3], 'pads': [1, 0, 0, 1], 'dilations': [2, 1], 'output_padding': [1, 0]})

# ---- Resize (port of the ONNX reference, opsets 18/19) ----
def rs(name, x, mode, attrs, scales=None, sizes=None, roi=None, opset=19):
    kw = {k: v for k, v in attrs.items()}
    y = resize(x, roi, scales, sizes, mode=mode, **kw)
    a = dict(attrs)
    a['mode'] = mode
    inputs = [x, roi, scales, sizes]
    case('nn_resize_' + name, 'Resize', inputs, [y], a, opset=opset, consts={1, 2, 3})
x = rnd(1, 1, 6, 8)
rs('antialias_linear_down', x, 'linear', {'antialias': 1}, scales=np.array([1, 1, 0.5, 0.6], np.float32))
rs('antialias_cubic_down', x, 'cubic', {'antialias': 1}, scales=np.array([1, 1, 0.4, 0.75], np.float32))
rs('antialias_linear_sizes', x, 'linear', {'antialias': 1}, sizes=np.array([1, 1, 3, 3], np.int64))
rs('axes_scales', x, 'linear', {'axes': [3, 2]}, scales=np.array([1.5, 0.5], np.float32))
rs('axes_sizes_nearest', x, 'nearest', {'axes': [-1]}, sizes=np.array([3], np.int64))
rs('keep_not_larger', x, 'linear', {'axes': [2, 3], 'keep_aspect_ratio_policy': 'not_larger'}, sizes=np.array([4, 4], np.int64))
rs('keep_not_smaller', x, 'nearest', {'keep_aspect_ratio_policy': 'not_smaller'}, sizes=np.array([1, 1, 9, 9], np.int64))
rs('half_pixel_symmetric', x, 'linear', {'coordinate_transformation_mode': 'half_pixel_symmetric'}, scales=np.array([1, 1, 1.7, 0.7], np.float32))
rs('cubic_exclude', x, 'cubic', {'exclude_outside': 1, 'cubic_coeff_a': -0.5}, scales=np.array([1, 1, 2.3, 1.1], np.float32))
rs('tf_crop_axes', x, 'linear', {'coordinate_transformation_mode': 'tf_crop_and_resize', 'axes': [2, 3], 'extrapolation_value': 7.0},
   sizes=np.array([5, 4], np.int64), roi=np.array([-0.2, 0.1, 0.9, 1.3], np.float32))
rs('nearest_ceil_3d', rnd(2, 3, 4), 'nearest', {'nearest_mode': 'ceil', 'coordinate_transformation_mode': 'asymmetric'}, scales=np.array([1, 1.5, 2.5], np.float32))
rs('pytorch_half_pixel_to1', x, 'linear', {'coordinate_transformation_mode': 'pytorch_half_pixel'}, sizes=np.array([1, 1, 1, 3], np.int64))
xi = rng.integers(0, 255, (1, 1, 4, 4)).astype(np.uint8)
rs('nearest_uint8', xi, 'nearest', {}, scales=np.array([1, 1, 2, 1.5], np.float32))
x10 = rnd(1, 2, 3, 4)
case('nn_resize_opset10_nearest', 'Resize', [x10, np.array([1, 1, 2, 1.5], np.float32)],
     [resize(x10, None, np.array([1, 1, 2, 1.5], np.float32), None, mode='nearest', coordinate_transformation_mode='asymmetric', nearest_mode='floor')],
     {'mode': 'nearest'}, opset=10, consts={1})
case('nn_resize_opset10_linear', 'Resize', [x10, np.array([1, 1, 2, 1.5], np.float32)],
     [resize(x10, None, np.array([1, 1, 2, 1.5], np.float32), None, mode='linear', coordinate_transformation_mode='asymmetric')],
     {'mode': 'linear'}, opset=10, consts={1})
case('nn_upsample_opset7_linear', 'Upsample', [x10],
     [resize(x10, None, np.array([1, 1, 2, 2.5], np.float32), None, mode='linear', coordinate_transformation_mode='asymmetric')],
     {'mode': 'linear', 'scales': [1.0, 1.0, 2.0, 2.5]}, opset=7)

# ---- GridSample (port of the ONNX reference) ----
def gs(name, x, grid, opset=20, **attrs):
    y = grid_sample(x, grid, **attrs)
    case('nn_gridsample_' + name, 'GridSample', [x, grid], [y], attrs, opset=opset)
x = rnd(1, 2, 4, 5)
grid = rng.uniform(-1.3, 1.3, (1, 3, 4, 2)).astype(np.float32)
for mode in ['linear', 'nearest', 'cubic']:
    for pm in ['zeros', 'border', 'reflection']:
        for ac in [0, 1]:
            gs(f'{mode}_{pm}_{ac}', x, grid, mode=mode, padding_mode=pm, align_corners=ac)
x3 = rnd(1, 2, 3, 4, 5)
grid3 = rng.uniform(-1.2, 1.2, (1, 2, 3, 2, 3)).astype(np.float32)
for mode in ['linear', 'nearest']:
    for pm in ['zeros', 'border', 'reflection']:
        gs(f'3d_{mode}_{pm}', x3, grid3, mode=mode, padding_mode=pm, align_corners=0)
gs('opset16_bicubic', x, grid, opset=16, mode='bicubic', padding_mode='border', align_corners=0)

# ---- MaxRoiPool (opset 1), as Caffe's ROIPooling that it comes from: the RoI corners are scaled
# and rounded (coordinates here avoid .5 ties), the RoI is at least 1x1, bin (ph, pw) covers rows
# [floor(ph * h / PH), ceil((ph + 1) * h / PH)) from the RoI's start, clipped to the image; an empty
# bin gives 0.
rng = np.random.default_rng(1)
def max_roi_pool(x, rois, pooled, scale):
    ph_n, pw_n = pooled
    y = np.zeros((rois.shape[0], x.shape[1], ph_n, pw_n), x.dtype)
    H, W = x.shape[2:]
    rnd_away = lambda v: int(np.floor(v + 0.5)) if v >= 0 else -int(np.floor(-v + 0.5))
    for r, (b, x1, y1, x2, y2) in enumerate(rois.astype(np.float64)):
        sw, sh, ew, eh = (rnd_away(v * scale) for v in (x1, y1, x2, y2))
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        for ph in range(ph_n):
            for pw in range(pw_n):
                h0 = min(max(int(np.floor(ph * rh / ph_n)) + sh, 0), H)
                h1 = min(max(int(np.ceil((ph + 1) * rh / ph_n)) + sh, 0), H)
                w0 = min(max(int(np.floor(pw * rw / pw_n)) + sw, 0), W)
                w1 = min(max(int(np.ceil((pw + 1) * rw / pw_n)) + sw, 0), W)
                if h1 > h0 and w1 > w0:
                    y[r, :, ph, pw] = x[int(b), :, h0:h1, w0:w1].max(axis=(1, 2))
    return y
x = rnd(2, 3, 8, 10)
rois = np.array([[0, 0, 0, 9, 7], [1, 2.2, 1.1, 7.9, 6.2], [1, 4, 3, 4, 3], [0, 6.2, 5.1, 12.2, 9.9]], np.float32)
case('nn_maxroipool', 'MaxRoiPool', [x, rois], [max_roi_pool(x, rois, [2, 3], 1.0)], {'pooled_shape': [2, 3]}, opset=1)
rois = np.array([[0, 2, 4, 16.8, 12.6], [1, 0, 0, 5.4, 4.6]], np.float32)
case('nn_maxroipool_scale', 'MaxRoiPool', [x, rois], [max_roi_pool(x, rois, [3, 2], 0.5)], {'pooled_shape': [3, 2], 'spatial_scale': 0.5}, opset=1)
