import sys, csv, numpy as np, torch, soundfile as sf
sys.path.insert(0, 'src'); torch.set_num_threads(1)
from use_repro.audio.stft import mag_pha_stft, stft
from use_repro.data.dataset import normalize_pair
from use_repro.enhance import load_enhancer, wave_fn
rows=list(csv.DictReader(open('results/small/simulation/valid/meta.tsv'),delimiter='\t'))[:24]
fn=wave_fn(load_enhancer(sys.argv[1]))
res=[]
for r in rows:
    x,fs=sf.read(r['noisy_path']); y,_=sf.read(r['clean_path'])
    x,y=normalize_pair(x,y); X=stft(torch.tensor(x)[None],fs); Y=stft(torch.tensor(y)[None],fs)
    mx,my=X.abs(),Y.abs()
    L=lambda m: float(((torch.log1p(m)-torch.log1p(my))**2).mean())
    gs=np.logspace(-2,0.5,60); lg=min(L(g*mx) for g in gs)
    irm=torch.clamp(my/(mx+1e-9),max=1)
    with torch.inference_mode(): o=fn(torch.tensor(x,dtype=torch.float32)[None],fs)
    mo=stft(o,fs).abs()
    res.append((fs,L(mx),lg,L(irm*mx),L(mo)))
a=np.array(res); print('fs8k share',(a[:,0]==8000).mean()); print('identity %.3f  best-gain %.3f  oracle-IRM %.3f  model %.3f'%tuple(a[:,1:].mean(0)))
