#!/usr/bin/python3
# Extra conformance cases for reductions and normalizations (empty reductions and the axes input of
# opset 18, integer/bool/float16 types, ArgMax/ArgMin index selection, Softmax's opset-11 coercion,
# LpNormalization, GroupNormalization 18 and 21, non-spatial BatchNormalization,
# NegativeLogLikelihoodLoss with weights and ignore_index) that ONNX 1.12's test data lacks.
# Expected outputs are written out by hand or with math from the ONNX operator spec.
#
# Regenerate (Debian 12: apt-get install protobuf-compiler libonnx-dev, for protoc and onnx.proto),
# from the repository root:
#   python3 tests/conformance/generators/reduce.py
# Writes tests/conformance/extra/test_reduce_*; the committed files are the source of truth (CI never
# runs python), so commit the regenerated data and rerun
#   kiln conformance tests/conformance/extra --write-expected tests/conformance/extra_expected_pass.txt
import glob, math, os, subprocess, struct, shutil
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'extra')
for old in glob.glob(os.path.join(ROOT, 'test_reduce_*')):
    shutil.rmtree(old)
ET={'f':1,'i32':6,'i64':7,'f16':10,'d':11,'bf16':16,'u8':2,'b':9}
def f2h(x):
    return struct.unpack('<H', struct.pack('<e', x))[0]
def tensor_txt(name, et, dims, vals):
    s=f'name: "{name}" data_type: {ET[et]} ' + ''.join(f'dims: {d} ' for d in dims)
    for v in vals:
        if et=='f':
            if math.isinf(v): s += f'float_data: {"inf" if v>0 else "-inf"} '
            else: s+=f'float_data: {v!r} '
        elif et=='d': s+=f'double_data: {v!r} '
        elif et in ('i32','u8','b'): s+=f'int32_data: {int(v)} '
        elif et=='i64': s+=f'int64_data: {int(v)} '
        elif et=='f16': s+=f'int32_data: {f2h(v)} '
    return s
def vi(name, et, dims):
    sh = ''.join(f'dim {{ dim_value: {d} }} ' for d in dims) if dims is not None else ''
    return f'{{ name: "{name}" type {{ tensor_type {{ elem_type: {ET[et]} shape {{ {sh} }} }} }} }}'
def attr(k, v):
    if isinstance(v, int): return f'attribute {{ name: "{k}" i: {v} type: INT }}'
    if isinstance(v, float): return f'attribute {{ name: "{k}" f: {v} type: FLOAT }}'
    if isinstance(v, str): return f'attribute {{ name: "{k}" s: "{v}" type: STRING }}'
    if isinstance(v, list): return f'attribute {{ name: "{k}" ' + ''.join(f'ints: {x} ' for x in v) + 'type: INTS }'
def enc(kind, txt, path):
    r = subprocess.run(['protoc', f'--encode=onnx.{kind}', '-I/usr/include', 'onnx/onnx.proto'], input=txt.encode(), capture_output=True)
    if r.returncode: raise SystemExit(r.stderr.decode() + txt)
    open(path,'wb').write(r.stdout)
def case(name, op, opset, inputs, outputs, attrs={}):
    """inputs/outputs: list of (name, et, dims, vals)"""
    d=f'{ROOT}/test_reduce_{name}'; os.makedirs(d+'/test_data_set_0')
    node = 'node { ' + ''.join(f'input: "{i[0]}" ' for i in inputs) + ''.join(f'output: "{o[0]}" ' for o in outputs) + f'op_type: "{op}" ' + ' '.join(attr(k,v) for k,v in attrs.items()) + ' }'
    g = f'ir_version: 8 opset_import {{ domain: "" version: {opset} }} graph {{ name: "g" {node} ' + ' '.join('input '+vi(i[0],i[1],i[2]) for i in inputs) + ' ' + ' '.join('output '+vi(o[0],o[1],o[2]) for o in outputs) + ' }'
    enc('ModelProto', g, d+'/model.onnx')
    for k,i in enumerate(inputs): enc('TensorProto', tensor_txt(*i), f'{d}/test_data_set_0/input_{k}.pb')
    for k,o in enumerate(outputs): enc('TensorProto', tensor_txt(*o), f'{d}/test_data_set_0/output_{k}.pb')
inf=float('inf')
# empty sets, opset 18 axes input
for op, val in [('ReduceMax',-inf),('ReduceMin',inf),('ReduceSum',0.0),('ReduceProd',1.0),('ReduceLogSumExp',-inf),('ReduceL2',0.0),('ReduceL1',0.0),('ReduceSumSquare',0.0),('ReduceLogSum',-inf)]:
    case(f'{op}_empty_set', op, 18, [('x','f',[2,0,4],[]),('axes','i64',[1],[1])], [('y','f',[2,1,4],[val]*8)])
x=[1.,5.,3.,-2.,0.,7.]
case('ReduceMax_axes_input_nokeep', 'ReduceMax', 18, [('x','f',[2,3],x),('axes','i64',[1],[-1])], [('y','f',[2],[5.,7.])], {'keepdims':0})
case('ReduceMin_bool', 'ReduceMin', 20, [('x','b',[2,3],[1,1,0,1,1,1]),('axes','i64',[1],[1])], [('y','b',[2,1],[0,1])])
case('ReduceSum_opset11_int32', 'ReduceSum', 11, [('x','i32',[2,3],[1,2,3,4,5,6])], [('y','i32',[3],[5,7,9])], {'axes':[0],'keepdims':0})
case('ReduceMean_noop', 'ReduceMean', 18, [('x','f',[2,3],x),('axes','i64',[0],[])], [('y','f',[2,3],x)], {'noop_with_empty_axes':1})
case('ReduceMean_all_noaxes', 'ReduceMean', 18, [('x','f',[2,3],x)], [('y','f',[1,1],[sum(x)/6])])
case('ReduceMean_int', 'ReduceMean', 13, [('x','i32',[2,3],[1,2,4,-1,-2,-4])], [('y','i32',[2,1],[2,-2])], {'axes':[1]})
case('ReduceProd_f16', 'ReduceProd', 13, [('x','f16',[2,3],[1.,2.,3.,.5,2.,4.])], [('y','f16',[1,3],[.5,4.,12.])], {'axes':[0]})
case('ReduceMax_u8', 'ReduceMax', 13, [('x','u8',[2,3],[1,200,3,4,5,6])], [('y','u8',[1,1],[200])])
case('ArgMax_last_int', 'ArgMax', 13, [('x','i32',[2,3],[3,1,3,0,5,5])], [('y','i64',[2],[2,2])], {'axis':1,'keepdims':0,'select_last_index':1})
case('ArgMin_first', 'ArgMin', 13, [('x','f',[2,3],[3,1,1,0,5,0])], [('y','i64',[2,1],[1,0])], {'axis':1})
# softmax opset 11 coercion over dims [1:]
xs=[0.,1.,2.,3.,4.,5.,6.,7.]
def sm(v):
    m=max(v); e=[math.exp(a-m) for a in v]; s=sum(e); return [a/s for a in e]
case('Softmax_opset11_coerce', 'Softmax', 11, [('x','f',[2,2,2],xs)], [('y','f',[2,2,2],sm(xs[:4])+sm(xs[4:]))])
case('Softmax_opset13_axis1', 'Softmax', 13, [('x','f',[2,2,2],xs)], [('y','f',[2,2,2],[sm([0,2])[0],sm([1,3])[0],sm([0,2])[1],sm([1,3])[1]]*2)], {'axis':1})
case('Softmax_f16', 'Softmax', 13, [('x','f16',[1,4],[0,1,2,3])], [('y','f16',[1,4],sm([0,1,2,3]))])
case('LogSoftmax_d', 'LogSoftmax', 13, [('x','d',[1,3],[1000.,1001.,1002.])], [('y','d',[1,3],[math.log(v) for v in sm([0,1,2])])])
case('Hardmax_opset11', 'Hardmax', 11, [('x','f',[2,2,2],[0,5,1,5,0,0,0,9])], [('y','f',[2,2,2],[0,1,0,0,0,0,0,1])])
# LpNormalization
lx=[3.,-4.,1.,1.]
case('LpNorm_p1_axis0', 'LpNormalization', 1, [('x','f',[2,2],lx)], [('y','f',[2,2],[3/4,-4/5,1/4,1/5])], {'axis':0,'p':1})
case('LpNorm_p2', 'LpNormalization', 1, [('x','f',[2,2],lx)], [('y','f',[2,2],[.6,-.8,1/math.sqrt(2),1/math.sqrt(2)])])
# GroupNormalization: N=1, C=4, 2 groups, spatial 2
gx=[1.,2.,3.,4., 0.,0.,2.,2.]
def gn(vals, eps=1e-5):
    m=sum(vals)/len(vals); v=sum((a-m)**2 for a in vals)/len(vals); return [(a-m)/math.sqrt(v+eps) for a in vals]
g0=gn(gx[:4]); g1=gn(gx[4:])
case('GroupNorm18', 'GroupNormalization', 18, [('x','f',[1,4,2],gx),('s','f',[2],[2.,3.]),('b','f',[2],[1.,0.])], [('y','f',[1,4,2],[a*2+1 for a in g0]+[a*3 for a in g1])], {'num_groups':2})
sc=[1.,2.,3.,4.]; bc=[0.,1.,0.,1.]
case('GroupNorm21', 'GroupNormalization', 21, [('x','f',[1,4,2],gx),('s','f',[4],sc),('b','f',[4],bc)], [('y','f',[1,4,2],[ (g0+g1)[i]*sc[i//2]+bc[i//2] for i in range(8)])], {'num_groups':2})
# BatchNorm opset 7 spatial=0: params per (C,D) position
bx=[1.,2.,3.,4.]  # N=2,C=1,D=2
case('BatchNorm7_nonspatial', 'BatchNormalization', 7, [('x','f',[2,1,2],bx),('s','f',[1,2],[1.,2.]),('b','f',[1,2],[0.,1.]),('m','f',[1,2],[1.,1.]),('v','f',[1,2],[1.,4.])], [('y','f',[2,1,2],[0., 2*(1)/math.sqrt(4+1e-5)+1, 2/math.sqrt(1+1e-5), 2*3/math.sqrt(4+1e-5)+1])], {'spatial':0})
# NLL with 2D input, sum; weights; ignore
case('NLL_2d_sum_ii', 'NegativeLogLikelihoodLoss', 13, [('x','f',[3,2],[-1.,-2.,-3.,-4.,-5.,-6.]),('t','i64',[3],[1,0,-1]),('w','f',[2],[0.5,2.])], [('y','f',[],[2*2+3*0.5])], {'reduction':'sum','ignore_index':-1})
case('NLL_all_ignored_mean', 'NegativeLogLikelihoodLoss', 13, [('x','f',[1,2],[-1.,-2.]),('t','i64',[1],[1])], [('y','f',[],[float('nan')])], {'ignore_index':1})
