import pandas as pd, soundfile as sf, numpy as np, sys
sys.path.insert(0, 'src')
from use_repro.metrics.nonintrusive import DNSMOS, DistillMOS, speechmos_dnsmos_onnx
d=DNSMOS(speechmos_dnsmos_onnx()); q=DistillMOS()
m=pd.read_csv('results/small/simulation/test/meta.tsv',sep='\t')
out=[]
for _,r in m.iterrows():
    x,fs=sf.read(r.clean_path); a,_=sf.read(r.clean_shifted_path)
    out.append(dict(fs=fs,sid=r.speech_sid,early=d(x,fs)['DNSMOS'],shifted=d(a,fs)['DNSMOS'],dm=q(x,fs)['DistillMOS']))
o=pd.DataFrame(out); print(o.mean(numeric_only=True)); print(o.groupby('sid').mean(numeric_only=True))
