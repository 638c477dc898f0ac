#!/usr/bin/python3
# Extra conformance cases for signal, math, text and training ops (DFT with opset-20 axis input, odd
# and large lengths, irfft; STFT; Hann/Hamming/Blackman windows; Det; TfIdfVectorizer;
# StringNormalizer with UTF-8; Adagrad in double) that ONNX 1.12's test data lacks. Expected outputs
# are computed in plain Python (cmath) from the ONNX operator spec, independently of kiln.
#
# Regenerate (Debian 12: apt-get install protobuf-compiler libonnx-dev, for protoc and onnx.proto),
# from the repository root:
#   python3 tests/conformance/generators/misc.py
# Writes tests/conformance/extra/test_misc_*; the committed files are the source of truth (CI never
# runs python), so commit the regenerated data and rerun
#   kiln conformance tests/conformance/extra --write-expected tests/conformance/extra_expected_pass.txt
import cmath, glob, math, os, random, shutil, subprocess
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'extra')
for old in glob.glob(os.path.join(ROOT, 'test_misc_*')):
    shutil.rmtree(old)
DT={'float':1,'int32':6,'int64':7,'string':8,'bool':9,'float16':10,'double':11,'uint8':2,'int8':3,'bfloat16':16}
def esc(s): return '"'+s.replace('\\','\\\\').replace('"','\\"')+'"'
def tensor_text(name, dtype, dims, vals):
    t=[f'name: {esc(name)}', f'data_type: {DT[dtype]}']+[f'dims: {d}' for d in dims]
    key={'float':'float_data','double':'double_data','int64':'int64_data','int32':'int32_data','string':'string_data','bool':'int32_data','uint8':'int32_data','int8':'int32_data','float16':'int32_data'}[dtype]
    for v in vals:
        if dtype=='string': t.append(f'{key}: {esc(v)}')
        elif dtype in('float','double'): t.append(f'{key}: {repr(float(v))}' if math.isfinite(v) else f'{key}: {"inf" if v>0 else "-inf"}')
        else: t.append(f'{key}: {int(v)}')
    return '\n'.join(t)
def encode(msg, text, path):
    r=subprocess.run(['protoc',f'--encode=onnx.{msg}','-I/usr/include','onnx/onnx.proto'],input=text.encode(),capture_output=True)
    if r.returncode: print(text); raise SystemExit(r.stderr.decode())
    open(path,'wb').write(r.stdout)
def attr_text(k,v):
    if isinstance(v,float): return f'attribute {{ name: "{k}" f: {v} type: FLOAT }}'
    if isinstance(v,int): return f'attribute {{ name: "{k}" i: {v} type: INT }}'
    if isinstance(v,str): return f'attribute {{ name: "{k}" s: {esc(v)} type: STRING }}'
    if isinstance(v,list) and v and isinstance(v[0],str): return f'attribute {{ name: "{k}" '+' '.join(f'strings: {esc(s)}' for s in v)+' type: STRINGS }'
    if isinstance(v,list) and v and isinstance(v[0],float): return f'attribute {{ name: "{k}" '+' '.join(f'floats: {s}' for s in v)+' type: FLOATS }'
    if isinstance(v,list): return f'attribute {{ name: "{k}" '+' '.join(f'ints: {s}' for s in v)+' type: INTS }'
def case(name, op, inputs, outputs, attrs={}, opset=17, domain='', node_inputs=None):
    """inputs: list of (name, dtype, dims, vals); outputs: list of (name, dtype, dims, vals or None)"""
    d=os.path.join(ROOT,'test_misc_'+name); shutil.rmtree(d,ignore_errors=True); os.makedirs(d+'/test_data_set_0')
    ni = node_inputs if node_inputs is not None else [i[0] for i in inputs]
    node='node { op_type: "%s" domain: "%s" %s %s %s }'%(op,domain,' '.join(f'input: {esc(i)}' for i in ni),' '.join(f'output: {esc(o[0])}' for o in outputs),' '.join(attr_text(k,v) for k,v in attrs.items()))
    def vi(n,dt,dims): return 'name: %s type { tensor_type { elem_type: %d shape { %s } } }'%(esc(n),DT[dt],' '.join(f'dim {{ dim_value: {x} }}' for x in dims))
    ops='opset_import { domain: "" version: %d }'%opset
    if domain: ops+=' opset_import { domain: "%s" version: 1 }'%domain
    g='ir_version: 8 %s graph { name: "g" %s %s %s }'%(ops,node,' '.join('input { %s }'%vi(*i[:3]) for i in inputs),' '.join('output { name: %s type { tensor_type { elem_type: %d } } }'%(esc(o[0]),DT[o[1]]) for o in outputs))
    encode('ModelProto',g,d+'/model.onnx')
    for k,i in enumerate(inputs): encode('TensorProto',tensor_text(*i),d+f'/test_data_set_0/input_{k}.pb')
    for k,o in enumerate(outputs): encode('TensorProto',tensor_text(*o),d+f'/test_data_set_0/output_{k}.pb')

# ---- DFT
random.seed(1)
def prod(l):
    p=1
    for v in l: p*=v
    return p
def dft_ref(xflat, shape, axis, L=None, inverse=False, onesided=False):
    r=len(shape); c=shape[-1]; n=shape[axis]
    irfft = inverse and onesided
    if L is None: L = 2*(n-1) if irfft else n
    outer=prod(shape[:axis]); inner=prod(shape[axis+1:r-1])
    olen = L//2+1 if (onesided and not inverse) else L
    oc = 1 if irfft else 2
    out=[0.0]*(outer*olen*inner*oc)
    for b in range(outer):
        for i in range(inner):
            def at(t):
                p=((b*n+t)*inner+i)*c
                return complex(xflat[p], xflat[p+1] if c==2 else 0)
            if irfft:
                full=[]
                for k in range(L):
                    if k<=L//2: v = at(k) if k<n else 0
                    else: v = at(L-k).conjugate() if L-k<n else 0
                    full.append(v)
                line=full
            else:
                line=[at(t) if t<n else 0 for t in range(L)]
            sgn = 1 if inverse else -1
            X=[sum(line[t]*cmath.exp(sgn*2j*math.pi*((k*t)%L)/L) for t in range(L)) for k in range(olen)]
            if inverse: X=[v/L for v in X]
            for k in range(olen):
                p=((b*olen+k)*inner+i)*oc
                out[p]=X[k].real
                if oc==2: out[p+1]=X[k].imag
    oshape=list(shape); oshape[axis]=olen; oshape[-1]=oc
    return out, oshape
def rnd(n): return [random.uniform(-1,1) for _ in range(n)]
def dft_case(name, shape, axis, L=None, inverse=0, onesided=0, opset=17, dtype='float', axis_input=True):
    x=rnd(prod(shape))
    out,osh=dft_ref(x,shape,axis if axis>=0 else axis+len(shape),L,bool(inverse),bool(onesided))
    inputs=[('x',dtype,shape,x)]; ni=['x']
    if L is not None: inputs.append(('len','int64',[],[L])); ni.append('len')
    else: ni.append('')
    attrs={'inverse':inverse,'onesided':onesided}
    if opset>=20:
        if axis_input: inputs.append(('axis','int64',[],[axis])); ni.append('axis')
    else: attrs['axis']=axis
    case(name,'DFT',inputs,[('y',dtype,osh,out)],attrs,opset=opset,node_inputs=ni)
dft_case('dft_rfft',[2,10,1],1,onesided=1)
dft_case('dft_rfft_odd',[2,3,9,1],2,onesided=1)
dft_case('dft_pad',[2,6,2],1,L=8)
dft_case('dft_crop',[2,6,2],1,L=4)
dft_case('dft_bluestein',[1,100,2],1)
dft_case('dft_bluestein_big',[1,1000,1],1, dtype='double')
dft_case('dft_pow2_big',[1,512,2],1, dtype='double')
dft_case('dft_direct_prime',[3,13,2],1, inverse=1)
dft_case('dft_irfft',[2,6,2],1,inverse=1,onesided=1)
dft_case('dft_irfft_len',[2,6,2],1,L=11,inverse=1,onesided=1)
dft_case('dft_irfft_len_short',[2,6,2],1,L=5,inverse=1,onesided=1)
dft_case('dft20_default_axis',[3,7,2],-2,opset=20,axis_input=False)
dft_case('dft20_axis0',[5,3,2],0,opset=20)
dft_case('dft20_negaxis',[2,5,3,2],-3,opset=20,onesided=1)
dft_case('dft20_double',[2,5,3,1],1,opset=20,dtype='double',inverse=1)

# ---- STFT, windows, Det
random.seed(2)
def rnd(n): return [random.uniform(-1,1) for _ in range(n)]
def stft_ref(x, B, S, C, step, fl, win, onesided):
    frames=(S-fl)//step+1; bins = fl//2+1 if onesided else fl
    out=[]
    for b in range(B):
        for f in range(frames):
            line=[complex(x[(b*S+f*step+t)*C], x[(b*S+f*step+t)*C+1] if C==2 else 0)*(win[t] if win else 1) for t in range(fl)]
            for k in range(bins):
                v=sum(line[t]*cmath.exp(-2j*math.pi*((k*t)%fl)/fl) for t in range(fl))
                out+= [v.real, v.imag]
    return out,[B,frames,bins,2]
def stft_case(name,B,S,C,step,fl=None,win=False,onesided=1):
    x=rnd(B*S*C); w=rnd(fl) if win else None
    out,sh=stft_ref(x,B,S,C,step,fl if fl else S,w,onesided)
    inputs=[('signal','float',[B,S,C],x),('step','int64',[],[step])]; ni=['signal','step']
    if win: inputs.append(('window','float',[fl],w)); ni.append('window')
    else: ni.append('')
    if fl and not win: inputs.append(('fl','int64',[],[fl])); ni.append('fl')
    case(name,'STFT',inputs,[('y','float',sh,out)],{'onesided':onesided},node_inputs=ni)
stft_case('stft_complex_twosided',2,40,2,5,fl=12,onesided=0)
stft_case('stft_window_odd',1,50,1,7,fl=9,win=True)
stft_case('stft_no_len',2,10,1,3)
# windows
def window(a0,a1,a2,size,periodic):
    N = size if periodic else size-1
    return [ (a0-a1*math.cos(2*math.pi*n/N)+a2*math.cos(4*math.pi*n/N)) if N>0 else 1.0 for n in range(size)]
case('hann_double_sym','HannWindow',[('size','int32',[],[7])],[('y','double',[7],window(.5,.5,0,7,0))],{'periodic':0,'output_datatype':11})
case('blackman_one','BlackmanWindow',[('size','int64',[],[1])],[('y','float',[1],[1.0])],{'periodic':0})
case('hamming_int','HammingWindow',[('size','int64',[],[5])],[('y','int32',[5],[int(v) for v in window(25/46,21/46,0,5,1)])],{'output_datatype':6})
case('hann_empty','HannWindow',[('size','int64',[],[0])],[('y','float',[0],[])])
# Det
def det(m):
    n=len(m)
    if n==0: return 1.0
    if n==1: return m[0][0]
    return sum((-1)**j*m[0][j]*det([row[:j]+row[j+1:] for row in m[1:]]) for j in range(n))
mats=[[[random.uniform(-2,2) for _ in range(4)] for _ in range(4)] for _ in range(6)]
mats[2][1]=list(mats[2][0])  # singular
flat=[v for m in mats for row in m for v in row]
case('det_batch','Det',[('x','double',[2,3,4,4],flat)],[('y','double',[2,3],[det(m) for m in mats])],opset=11)
case('det_empty_batch','Det',[('x','float',[0,3,3],[])],[('y','float',[0],[])],opset=11)
case('det_0x0','Det',[('x','float',[2,0,0],[])],[('y','float',[2],[1.0,1.0])],opset=11)
case('det_1x1','Det',[('x','float',[1,1],[3.5])],[('y','float',[],[3.5])],opset=11)

# ---- TfIdfVectorizer, StringNormalizer, Adagrad
base=dict(pool_strings=["a","b","c","a","b","b","c"],ngram_counts=[0,3],ngram_indexes=[0,1,2,3,4],min_gram_length=1,max_gram_length=2)
case('tfidf_str_tfidf_skip1','TfIdfVectorizer',[('x','string',[5],["a","x","b","c","b"])],[('y','float',[5],[1*1,2*2,1*3,1*4,1*5])],dict(base,mode="TFIDF",max_skip_count=1,weights=[1.,2.,3.,4.,5.]),opset=9)
case('tfidf_str_idf_skip0','TfIdfVectorizer',[('x','string',[1,5],["a","x","b","c","b"])],[('y','float',[1,5],[1,2,3,0,5])],dict(base,mode="IDF",max_skip_count=0,weights=[1.,2.,3.,4.,5.]),opset=9)
case('tfidf_str_idf_noweights','TfIdfVectorizer',[('x','string',[5],["a","x","b","c","b"])],[('y','float',[5],[1,1,1,0,1])],dict(base,mode="IDF",max_skip_count=0),opset=9)
ib=dict(pool_int64s=[1,2,3,1,2,2,3],ngram_counts=[0,3],ngram_indexes=[4,3,2,1,0],min_gram_length=2,max_gram_length=2)
case('tfidf_int32_batch_bigrams','TfIdfVectorizer',[('x','int32',[2,5],[1,9,2,3,2, 1,2,3,1,2])],[('y','float',[2,5],[1,0,0,0,0, 1,2,0,0,0])],dict(ib,mode="TF",max_skip_count=0),opset=9)
case('tfidf_empty_rows','TfIdfVectorizer',[('x','int64',[2,0],[])],[('y','float',[2,5],[0]*10)],dict(ib,mode="TF",max_skip_count=0),opset=9)
# string normalizer
case('strnorm_insensitive_lower_utf8','StringNormalizer',[('x','string',[5],["Ünïcode","STOP","ÀÉÎ ΣΊΣΥΦΟΣ","stöp","Привет"])],[('y','string',[3],["ünïcode","àéî σίσυφοσ","привет"])],dict(case_change_action="LOWER",stopwords=["stop","STÖP"]),opset=10)
case('strnorm_upper_utf8','StringNormalizer',[('x','string',[1,3],["straße","ÿes","ǆ"])],[('y','string',[1,3],["STRAßE","ŸES","ǆ"])],dict(case_change_action="UPPER",locale="en_US"),opset=10)
case('strnorm_all_dropped_2d','StringNormalizer',[('x','string',[1,2],["a","A"])],[('y','string',[1,1],[""])],dict(stopwords=["a"]),opset=10)
# training double
case('adagrad_double','Adagrad',[('R','double',[],[0.1]),('T','int64',[],[3]),('X','double',[2],[1.0,-2.0]),('G','double',[2],[0.5,0.25]),('H','double',[2],[0.0,1.0])],
  [('X_new','double',[2],[0.92307707390619, -2.017242113421334]),('H_new','double',[2],[0.2601, 1.0529])],dict(decay_factor=0.1,epsilon=1e-6,norm_coefficient=0.01),domain='ai.onnx.preview.training')
