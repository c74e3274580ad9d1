"""Quick test-set check: DNSMOS, DistillMOS, PESQ, ESTOI, SDR of noisy and of each checkpoint (early ref)."""
import os, sys, numpy as np, pandas as pd, soundfile as sf, torch
sys.path.insert(0, 'src'); torch.set_num_threads(1)
from use_repro.metrics.nonintrusive import DNSMOS, DistillMOS, speechmos_dnsmos_onnx
from use_repro.metrics.intrusive import pesq_score, estoi_score, sdr_score
from use_repro.enhance import load_enhancer, wave_fn, enhance_signal
d=DNSMOS(speechmos_dnsmos_onnx()); q=DistillMOS()
m=pd.read_csv('results/small/simulation/test/meta.tsv',sep='\t')
N=int(sys.argv[1]); m=m.iloc[::max(1,60//N)][:N]
def score(x,y,fs): return dict(DNSMOS=d(x,fs)['DNSMOS'],DistillMOS=q(x,fs)['DistillMOS'],PESQ=pesq_score(y,x,fs),ESTOI=estoi_score(y,x,fs),SDR=sdr_score(y,x))
cache=os.path.join(os.environ.get('OUT', '/tmp/s5'), 'noisy_scores_%d.csv' % N)
if os.path.exists(cache): base=pd.read_csv(cache)
else:
    base=pd.DataFrame([score(sf.read(r.noisy_path)[0],sf.read(r.clean_path)[0],r.fs) for r in m.itertuples()]); base.to_csv(cache,index=False)
print('noisy', base.mean().round(3).to_dict())
for ck in sys.argv[2:]:
    fn=wave_fn(load_enhancer(ck))
    rows=[]
    for r in m.itertuples():
        x,fs=sf.read(r.noisy_path); y,_=sf.read(r.clean_path)
        o=enhance_signal(fn,x.astype(np.float32),fs)
        rows.append(score(o,y,fs))
    e=pd.DataFrame(rows); print(ck, (e.mean()-base.mean()).round(3).to_dict(), flush=True)
