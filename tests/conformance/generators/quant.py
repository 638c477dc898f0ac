#!/usr/bin/python3
# Extra conformance cases for quantized and recurrent ops (QuantizeLinear/DequantizeLinear with
# blocks, axes and newer dtypes; MatMulInteger, ConvInteger, QLinearConv, QLinearMatMul; RNN, GRU,
# LSTM with layouts, clipping, sequence lengths and activations) that ONNX 1.12's test data lacks.
# Expected outputs are computed with numpy from the ONNX operator spec, independently of kiln.
#
# Regenerate (Debian 12: apt-get install python3-onnx python3-numpy), from the repository root:
#   /usr/bin/python3 tests/conformance/generators/quant.py
# Writes tests/conformance/extra/test_quant_*; the committed files are the source of truth (CI never
# runs python), so commit the regenerated data and rerun
#   kiln conformance tests/conformance/extra --write-expected tests/conformance/extra_expected_pass.txt
import glob, os, shutil
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto as TP
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'extra')
for old in glob.glob(os.path.join(ROOT, 'test_quant_*')):
    shutil.rmtree(old)
rng = np.random.default_rng(0)
NP2TP = {np.float32: TP.FLOAT, np.float16: TP.FLOAT16, np.float64: TP.DOUBLE, np.uint8: TP.UINT8, np.int8: TP.INT8,
         np.uint16: TP.UINT16, np.int16: TP.INT16, np.int32: TP.INT32, np.int64: TP.INT64}

def case(name, op, inputs, outputs, opset, **attrs):
    """inputs: list of (name, array or None); outputs: list of (name, array or None)"""
    d = os.path.join(ROOT, 'test_quant_' + name); os.makedirs(os.path.join(d, 'test_data_set_0'))
    in_names = [n if a is not None else '' for n, a in inputs]
    while in_names and in_names[-1] == '': in_names.pop()
    out_names = [n if a is not None else '' for n, a in outputs]
    node = helper.make_node(op, in_names, out_names, **attrs)
    vi = lambda n, a: helper.make_tensor_value_info(n, NP2TP[a.dtype.type], a.shape)
    g = helper.make_graph([node], name, [vi(n, a) for n, a in inputs if a is not None],
                          [vi(n, a) for n, a in outputs if a is not None])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])
    m.ir_version = 8
    open(os.path.join(d, 'model.onnx'), 'wb').write(m.SerializeToString())
    i = 0
    for n, a in inputs:
        if a is None: continue
        open(os.path.join(d, 'test_data_set_0', f'input_{i}.pb'), 'wb').write(numpy_helper.from_array(a, n).SerializeToString()); i += 1
    i = 0
    for n, a in outputs:
        if a is None: continue
        open(os.path.join(d, 'test_data_set_0', f'output_{i}.pb'), 'wb').write(numpy_helper.from_array(a, n).SerializeToString()); i += 1

def q(x, s, z, lo, hi, dt):
    return np.clip(np.rint(x / s).astype(np.int64) + z, lo, hi).astype(dt)

# --- QuantizeLinear
x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300, -300, 3.49], np.float32)
case('q_round_half_even', 'QuantizeLinear', [('x', x), ('s', np.float32(1)), ('z', np.int8(0))],
     [('y', q(x, np.float32(1), 0, -128, 127, np.int8))], 13)
x = rng.normal(size=(3, 7)).astype(np.float32) * 50
s = (rng.random((3, 3)) + 0.1).astype(np.float32); z = rng.integers(-100, 100, (3, 3)).astype(np.int16)
se = np.repeat(s, 3, axis=1)[:, :7]; ze = np.repeat(z, 3, axis=1)[:, :7]
case('q_blocked_int16', 'QuantizeLinear', [('x', x), ('s', s), ('z', z)], [('y', q(x, se, ze, -32768, 32767, np.int16))], 21, axis=-1, block_size=3)
x = rng.normal(size=(2, 3, 4)).astype(np.float32) * 1000
s = (rng.random(3) + 0.01).astype(np.float32)
case('q_axis_u16_output_dtype', 'QuantizeLinear', [('x', x), ('s', s)], [('y', q(x, s.reshape(1, 3, 1), 0, 0, 65535, np.uint16))], 21, axis=-2, output_dtype=TP.UINT16)
x = rng.normal(size=(4, 2)).astype(np.float32) * 100
s = np.float32(0.7)
case('q_default_u8', 'QuantizeLinear', [('x', x), ('s', s)], [('y', q(x, s, 0, 0, 255, np.uint8))], 10)
# --- DequantizeLinear
x = rng.integers(-32768, 32767, (5, 3)).astype(np.int16)
s = (rng.random((2, 3)) + 0.1).astype(np.float32); z = rng.integers(-100, 100, (2, 3)).astype(np.int16)
se = np.repeat(s, 4, axis=0)[:5]; ze = np.repeat(z, 4, axis=0)[:5]
case('dq_blocked_int16', 'DequantizeLinear', [('x', x), ('s', s), ('z', z)], [('y', ((x.astype(np.float32) - ze) * se).astype(np.float32))], 21, axis=0, block_size=4)
x = rng.integers(0, 255, (2, 3)).astype(np.uint8)
s = np.array([0.5, 0.25, 2], np.float16); z = np.array([1, 2, 3], np.uint8)
case('dq_axis_f16', 'DequantizeLinear', [('x', x), ('s', s), ('z', z)], [('y', ((x.astype(np.float32) - z) * s).astype(np.float16))], 19, axis=1)
x = rng.integers(-1000, 1000, (6,)).astype(np.int32)
case('dq_int32', 'DequantizeLinear', [('x', x), ('s', np.float32(0.1))], [('y', (x.astype(np.float32) * np.float32(0.1)).astype(np.float32))], 13)
# --- MatMulInteger with per-row / per-column zero points and broadcasting
A = rng.integers(0, 255, (2, 3, 4)).astype(np.uint8); B = rng.integers(-128, 127, (4, 5)).astype(np.int8)
za = rng.integers(0, 255, (3,)).astype(np.uint8); zb = rng.integers(-128, 127, (5,)).astype(np.int8)
Y = (A.astype(np.int32) - za.reshape(3, 1)) @ (B.astype(np.int32) - zb)
case('mmi_rows_cols', 'MatMulInteger', [('A', A), ('B', B), ('za', za), ('zb', zb)], [('Y', Y.astype(np.int32))], 10)
A = rng.integers(-128, 127, (4,)).astype(np.int8); B = rng.integers(0, 255, (3, 4, 2)).astype(np.uint8)
Y = A.astype(np.int32) @ B.astype(np.int32)
case('mmi_vec', 'MatMulInteger', [('A', A), ('B', B)], [('Y', Y.astype(np.int32))], 10)

# --- conv
def conv_ref(X, W, B, strides, dil, pads, group):
    N, C, H, Wd = X.shape; M, Cg, KH, KW = W.shape
    Xp = np.pad(X, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    OH = (H + pads[0] + pads[2] - ((KH - 1) * dil[0] + 1)) // strides[0] + 1
    OW = (Wd + pads[1] + pads[3] - ((KW - 1) * dil[1] + 1)) // strides[1] + 1
    Y = np.zeros((N, M, OH, OW), np.int64); mg = M // group
    for n in range(N):
        for m in range(M):
            gi = m // mg
            for oh in range(OH):
                for ow in range(OW):
                    patch = Xp[n, gi * Cg:(gi + 1) * Cg, oh * strides[0]:oh * strides[0] + (KH - 1) * dil[0] + 1:dil[0], ow * strides[1]:ow * strides[1] + (KW - 1) * dil[1] + 1:dil[1]]
                    Y[n, m, oh, ow] = (patch.astype(np.int64) * W[m].astype(np.int64)).sum() + (B[m] if B is not None else 0)
    return Y
X = rng.integers(0, 255, (2, 4, 7, 6)).astype(np.uint8); W = rng.integers(-128, 127, (6, 2, 3, 2)).astype(np.int8)
xz = np.uint8(100); wz = rng.integers(-10, 10, (6,)).astype(np.int8)
# SAME_UPPER with stride 2, dilation (1,2): H: out=4, total=max(0,(4-1)*2+3-7)=2 -> 1,1; W: out=3, dk=3, total=(3-1)*2+3-6=1 -> 0,1
Y = conv_ref(X.astype(np.int64) - xz, W.astype(np.int64) - wz.reshape(6, 1, 1, 1), None, (2, 2), (1, 2), (1, 0, 1, 1), 2)
case('convint_same_group', 'ConvInteger', [('x', X), ('w', W), ('xz', xz), ('wz', wz)], [('y', Y.astype(np.int32))], 10,
     strides=[2, 2], dilations=[1, 2], group=2, auto_pad='SAME_UPPER')
Y = conv_ref(X.astype(np.int64) - xz, W.astype(np.int64) - wz.reshape(6, 1, 1, 1), None, (2, 1), (1, 1), (1, 0, 1, 1), 2)
# SAME_LOWER stride (2,1) dil 1: H out=4 total=(3)*2+3-7=2 -> 1,1; W out=6 total=5+2-6=1 -> lower: 1,0
Y = conv_ref(X.astype(np.int64) - xz, W.astype(np.int64) - wz.reshape(6, 1, 1, 1), None, (2, 1), (1, 1), (1, 1, 1, 0), 2)
case('convint_same_lower', 'ConvInteger', [('x', X), ('w', W), ('xz', xz), ('wz', wz)], [('y', Y.astype(np.int32))], 10,
     strides=[2, 1], group=2, auto_pad='SAME_LOWER')
# QLinearConv per channel, int8 out, bias, pads
X = rng.integers(-128, 127, (1, 3, 5, 5)).astype(np.int8); W = rng.integers(-128, 127, (4, 3, 3, 3)).astype(np.int8)
xs = np.float32(0.05); xz = np.int8(3); ws = (rng.random(4) * 0.02 + 0.001).astype(np.float32); wz = np.array([0, 1, -1, 2], np.int8)
ys = np.float32(0.9); yz = np.int8(-5); Bb = rng.integers(-2000, 2000, (4,)).astype(np.int32)
acc = conv_ref(X.astype(np.int64) - xz, W.astype(np.int64) - wz.reshape(4, 1, 1, 1), Bb, (2, 2), (1, 1), (1, 2, 0, 1), 1)
mult = (xs * ws / ys).astype(np.float32).reshape(1, 4, 1, 1)
Y = np.clip(np.rint(acc.astype(np.int32) * mult.astype(np.float64) + yz), -128, 127).astype(np.int8)
case('qlconv_per_channel', 'QLinearConv', [('x', X), ('xs', xs), ('xz', xz), ('w', W), ('ws', ws), ('wz', wz), ('ys', ys), ('yz', yz), ('B', Bb)],
     [('y', Y)], 10, strides=[2, 2], pads=[1, 2, 0, 1])
# QLinearMatMul int8 with per-column b_scale
A = rng.integers(-128, 127, (2, 3, 4)).astype(np.int8); B = rng.integers(-128, 127, (4, 5)).astype(np.int8)
a_s = np.float32(0.03); az = np.int8(2); bs = (rng.random(5) * 0.05 + 0.01).astype(np.float32); bz = np.int8(-1)
ys = np.float32(0.2); yz = np.int8(10)
C = (A.astype(np.int32) - az) @ (B.astype(np.int32) - bz)
Y = np.clip(np.rint(C * (a_s * bs / ys) + yz), -128, 127).astype(np.int8)
case('qlmm_per_col', 'QLinearMatMul', [('a', A), ('as', a_s), ('az', az), ('b', B), ('bs', bs), ('bz', bz), ('ys', ys), ('yz', yz)], [('y', Y)], 10)

# --- recurrent
sig = lambda v: 1 / (1 + np.exp(-v))
ACT = {'Tanh': lambda v, a, b: np.tanh(v), 'Sigmoid': lambda v, a, b: sig(v), 'Relu': lambda v, a, b: np.maximum(v, 0),
       'LeakyRelu': lambda v, a, b: np.where(v >= 0, v, a * v), 'HardSigmoid': lambda v, a, b: np.clip(a * v + b, 0, 1),
       'Affine': lambda v, a, b: a * v + b, 'ScaledTanh': lambda v, a, b: a * np.tanh(b * v), 'Elu': lambda v, a, b: np.where(v >= 0, v, a * (np.exp(v) - 1)),
       'Softsign': lambda v, a, b: v / (1 + np.abs(v)), 'Softplus': lambda v, a, b: np.log1p(np.exp(v)), 'ThresholdedRelu': lambda v, a, b: np.where(v > a, v, 0)}
def rec_ref(kind, X, W, R, B, lens, h0, c0, P, acts, dirs, clip=None, lbr=0, input_forget=0, reverse=False):
    # layout-0 arrays; acts: list of (name, alpha, beta) per dir*per_dir
    seq, batch, _ = X.shape; H = R.shape[2]; nact = {'RNN': 1, 'GRU': 2, 'LSTM': 3}[kind]
    Y = np.zeros((seq, dirs, batch, H)); Yh = np.zeros((dirs, batch, H)); Yc = np.zeros((dirs, batch, H))
    cl = (lambda v: np.clip(v, -clip, clip)) if clip else (lambda v: v)
    for d in range(dirs):
        f = [lambda v, A=ACT[n], a=a, b=b: A(v, a, b) for n, a, b in acts[d * nact:(d + 1) * nact]]
        back = reverse or d == 1
        for bb in range(batch):
            h = h0[d, bb].astype(np.float64).copy(); c = c0[d, bb].astype(np.float64).copy(); L = lens[bb]
            for s in range(L):
                t = L - 1 - s if back else s
                x = X[t, bb].astype(np.float64)
                Wd = W[d].astype(np.float64); Rd = R[d].astype(np.float64); Wb = B[d, :W.shape[1]]; Rb = B[d, W.shape[1]:]
                if kind == 'RNN':
                    h = f[0](cl(Wd @ x + Rd @ h + Wb + Rb))
                elif kind == 'GRU':
                    z = f[0](cl(Wd[:H] @ x + Rd[:H] @ h + Wb[:H] + Rb[:H]))
                    r = f[0](cl(Wd[H:2*H] @ x + Rd[H:2*H] @ h + Wb[H:2*H] + Rb[H:2*H]))
                    if lbr: hh = f[1](cl(Wd[2*H:] @ x + r * (Rd[2*H:] @ h + Rb[2*H:]) + Wb[2*H:]))
                    else: hh = f[1](cl(Wd[2*H:] @ x + Rd[2*H:] @ (r * h) + Rb[2*H:] + Wb[2*H:]))
                    h = (1 - z) * hh + z * h
                else:
                    g = lambda k: Wd[k*H:(k+1)*H] @ x + Rd[k*H:(k+1)*H] @ h + Wb[k*H:(k+1)*H] + Rb[k*H:(k+1)*H]
                    i = f[0](cl(g(0) + P[d, :H] * c))
                    fg = 1 - i if input_forget else f[0](cl(g(2) + P[d, 2*H:] * c))
                    cc = f[1](cl(g(3)))
                    c = fg * c + i * cc
                    o = f[0](cl(g(1) + P[d, H:2*H] * c))
                    h = o * f[2](c)
                Y[t, d, bb] = h
            Yh[d, bb] = h; Yc[d, bb] = c
    return Y, Yh, Yc

def rec_case(name, kind, seq, batch, I, H, dirs, layout=0, lens=None, init=True, peep=False, acts=None, alphas=None, betas=None, dt=np.float32, opset=14, outs=(1, 1, 1), **attrs):
    G = {'RNN': 1, 'GRU': 3, 'LSTM': 4}[kind]; nact = {'RNN': 1, 'GRU': 2, 'LSTM': 3}[kind]
    X = rng.normal(size=(seq, batch, I)).astype(dt); W = (rng.normal(size=(dirs, G * H, I)) * 0.5).astype(dt)
    R = (rng.normal(size=(dirs, G * H, H)) * 0.5).astype(dt); B = (rng.normal(size=(dirs, 2 * G * H)) * 0.3).astype(dt)
    h0 = rng.normal(size=(dirs, batch, H)).astype(dt) if init else np.zeros((dirs, batch, H), dt)
    c0 = rng.normal(size=(dirs, batch, H)).astype(dt) if init else np.zeros((dirs, batch, H), dt)
    P = (rng.normal(size=(dirs, 3 * H)) * 0.5).astype(dt) if peep else np.zeros((dirs, 3 * H), dt)
    L = np.array(lens if lens is not None else [seq] * batch, np.int32)
    default = {'RNN': ['Tanh'], 'GRU': ['Sigmoid', 'Tanh'], 'LSTM': ['Sigmoid', 'Tanh', 'Tanh']}[kind]
    names = acts if acts else default * dirs
    al = list(alphas or []); be = list(betas or [])
    DEF = {'LeakyRelu': (0.01, 0), 'ThresholdedRelu': (1, 0), 'Elu': (1, 0), 'HardSigmoid': (0.2, 0.5), 'Affine': (1, 0), 'ScaledTanh': (1, 1)}
    actl = []
    for n in names:
        a, b = DEF.get(n, (0, 0))
        if n in ('LeakyRelu', 'ThresholdedRelu', 'Elu', 'HardSigmoid', 'Affine', 'ScaledTanh') and al: a = al.pop(0)
        if n in ('HardSigmoid', 'Affine', 'ScaledTanh') and be: b = be.pop(0)
        actl.append((n, a, b))
    Y, Yh, Yc = rec_ref(kind, X, W, R, B, L, h0, c0, P, actl, dirs, clip=attrs.get('clip'), lbr=attrs.get('linear_before_reset', 0),
                        input_forget=attrs.get('input_forget', 0), reverse=attrs.get('direction') == 'reverse')
    if acts: attrs['activations'] = acts
    if alphas: attrs['activation_alpha'] = alphas
    if betas: attrs['activation_beta'] = betas
    if layout:
        X = X.transpose(1, 0, 2); h0 = h0.transpose(1, 0, 2); c0 = c0.transpose(1, 0, 2)
        Y = Y.transpose(2, 0, 1, 3); Yh = Yh.transpose(1, 0, 2); Yc = Yc.transpose(1, 0, 2)
        attrs['layout'] = 1
    ins = [('X', X), ('W', W), ('R', R), ('B', B), ('sequence_lens', L if lens is not None else None), ('initial_h', h0 if init else None)]
    if kind == 'LSTM': ins += [('initial_c', c0 if init else None), ('P', P if peep else None)]
    o = [('Y', Y.astype(dt) if outs[0] else None), ('Y_h', Yh.astype(dt) if outs[1] else None)]
    if kind == 'LSTM': o.append(('Y_c', Yc.astype(dt) if outs[2] else None))
    case(name, kind, ins, o, opset, hidden_size=H, **attrs)

rec_case('rnn_bidi_layout1', 'RNN', 4, 3, 2, 5, 2, layout=1, lens=[4, 2, 0], acts=['LeakyRelu', 'HardSigmoid'], alphas=[0.2, 0.3], betas=[0.4], direction='bidirectional')
rec_case('rnn_reverse_acts', 'RNN', 5, 2, 3, 4, 1, lens=[3, 5], acts=['Affine'], alphas=[0.5], betas=[0.1], direction='reverse')
rec_case('rnn_softplus_clip', 'RNN', 3, 2, 3, 4, 1, acts=['Softplus'], clip=0.7, opset=7)
rec_case('gru_bidi_lbr_clip', 'GRU', 5, 3, 3, 4, 2, lens=[5, 1, 3], clip=1.5, linear_before_reset=1, direction='bidirectional')
rec_case('gru_bidi_layout1', 'GRU', 4, 2, 3, 3, 2, layout=1, acts=['Sigmoid', 'Softsign', 'HardSigmoid', 'Elu'], alphas=[0.3, 0.9], betas=[0.45], direction='bidirectional')
rec_case('gru_double_reverse', 'GRU', 4, 2, 3, 3, 1, dt=np.float64, lens=[2, 4], direction='reverse')
rec_case('lstm_bidi_peep_forget', 'LSTM', 5, 3, 2, 4, 2, lens=[5, 2, 4], peep=True, input_forget=1, direction='bidirectional')
rec_case('lstm_bidi_layout1_clip', 'LSTM', 4, 2, 3, 3, 2, layout=1, peep=True, clip=0.8, lens=[3, 4], direction='bidirectional')
rec_case('lstm_reverse_onlyyc', 'LSTM', 4, 2, 3, 3, 1, outs=(0, 0, 1), acts=['HardSigmoid', 'ScaledTanh', 'Relu'], alphas=[0.3, 1.2], betas=[0.4, 0.7], direction='reverse')
rec_case('lstm_f16', 'LSTM', 3, 2, 3, 3, 1, dt=np.float16, peep=True)
print('ok')
