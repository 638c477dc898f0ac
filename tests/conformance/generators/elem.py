#!/usr/bin/python3
# Extra conformance cases for elementwise ops newer than ONNX 1.12's test data: the Bitwise ops and
# Mish (opset 18) and Gelu (opset 20). Expected outputs are computed with numpy from the formulas in
# the ONNX operator spec, independently of kiln.
#
# Regenerate (Debian 12: apt-get install python3-onnx python3-numpy), from the repository root:
#   /usr/bin/python3 tests/conformance/generators/elem.py
# Writes tests/conformance/extra/test_elem_*; the committed files are the source of truth (CI never
# runs python), so commit the regenerated data and rerun
#   kiln conformance tests/conformance/extra --write-expected tests/conformance/extra_expected_pass.txt
import glob
import math
import os
import shutil

import numpy as np
from onnx import helper, numpy_helper, TensorProto as TP

FAMILY = 'elem'
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


def ints(dt, shape):
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


# ---- Bitwise (opset 18), with multidirectional broadcasting for the binary ones
a, b = ints(np.int32, (2, 3, 4)), ints(np.int32, (3, 1))
case('bitwise_and_int32_bcast', 'BitwiseAnd', [('a', a), ('b', b)], [('y', np.bitwise_and(a, b))], 18)
a, b = ints(np.uint8, (3, 4)), ints(np.uint8, (4,))
case('bitwise_and_uint8', 'BitwiseAnd', [('a', a), ('b', b)], [('y', np.bitwise_and(a, b))], 18)
a, b = ints(np.int16, (5,)), ints(np.int16, (2, 1))
case('bitwise_or_int16_bcast', 'BitwiseOr', [('a', a), ('b', b)], [('y', np.bitwise_or(a, b))], 18)
a, b = ints(np.uint64, (2, 3)), ints(np.uint64, (2, 3))
case('bitwise_or_uint64', 'BitwiseOr', [('a', a), ('b', b)], [('y', np.bitwise_or(a, b))], 18)
a, b = ints(np.int64, (3, 4)), ints(np.int64, (1, 4))
case('bitwise_xor_int64_bcast', 'BitwiseXor', [('a', a), ('b', b)], [('y', np.bitwise_xor(a, b))], 18)
a, b = ints(np.uint32, (4,)), ints(np.uint32, (4,))
case('bitwise_xor_uint32', 'BitwiseXor', [('a', a), ('b', b)], [('y', np.bitwise_xor(a, b))], 18)
for dt, shape in [(np.int8, (3, 5)), (np.uint16, (7,)), (np.int32, (2, 2, 3)), (np.uint64, (4,))]:
    x = ints(dt, shape)
    case(f'bitwise_not_{np.dtype(dt).name}', 'BitwiseNot', [('x', x)], [('y', np.bitwise_not(x))], 18)

# ---- Mish (opset 18): x * tanh(softplus(x)), softplus(x) = ln(1 + e^x)
def mish(x):
    x64 = x.astype(np.float64)
    return (x64 * np.tanh(np.log1p(np.exp(x64)))).astype(x.dtype)
x = np.concatenate([rng.uniform(-6, 6, 40), [-30.0, -1.0, 0.0, 1.0, 30.0]]).astype(np.float32).reshape(5, 9)
case('mish_float', 'Mish', [('x', x)], [('y', mish(x))], 18)
x = rng.uniform(-8, 8, (3, 4)).astype(np.float64)
case('mish_double', 'Mish', [('x', x)], [('y', mish(x))], 18)
x = rng.uniform(-4, 4, (2, 6)).astype(np.float16)
case('mish_float16', 'Mish', [('x', x)], [('y', mish(x))], 18)

# ---- Gelu (opset 20)
#   approximate="none": 0.5 * x * (1 + erf(x / sqrt(2)))
#   approximate="tanh": 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
def gelu(x, approximate='none'):
    x64 = x.astype(np.float64)
    if approximate == 'tanh':
        y = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        y = 0.5 * x64 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2)))
    return y.astype(x.dtype)
x = np.concatenate([rng.uniform(-5, 5, 30), [-10.0, -0.5, 0.0, 0.5, 10.0, 3.0]]).astype(np.float32).reshape(4, 9)
case('gelu_float', 'Gelu', [('x', x)], [('y', gelu(x))], 20)
case('gelu_tanh_float', 'Gelu', [('x', x)], [('y', gelu(x, 'tanh'))], 20, approximate='tanh')
x = rng.uniform(-5, 5, (2, 3, 4)).astype(np.float64)
case('gelu_double', 'Gelu', [('x', x)], [('y', gelu(x))], 20, approximate='none')
x = rng.uniform(-4, 4, (10,)).astype(np.float16)
case('gelu_tanh_float16', 'Gelu', [('x', x)], [('y', gelu(x, 'tanh'))], 20, approximate='tanh')
