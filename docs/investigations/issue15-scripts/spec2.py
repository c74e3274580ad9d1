import sys, pandas as pd, soundfile as sf, numpy as np, matplotlib, torch
sys.path.insert(0, 'src'); torch.set_num_threads(1)
matplotlib.use('Agg'); import matplotlib.pyplot as plt
from use_repro.enhance import load_enhancer, wave_fn, enhance_signal
m=pd.read_csv('results/small/simulation/test/meta.tsv',sep='\t')
rows=[m[m.fs==8000].iloc[0], m[m.fs==16000].iloc[0], m[m.fs==44100].iloc[2]]
cks=sys.argv[2:]; fns=[wave_fn(load_enhancer(c)) for c in cks]
fig,ax=plt.subplots(3,2+len(cks),figsize=(6*(2+len(cks)),10))
for i,r in enumerate(rows):
    x,fs=sf.read(r.noisy_path); y,_=sf.read(r.clean_path)
    sig=[('noisy',x),('clean',y)]+[(c.split('/')[-2],enhance_signal(f,x.astype(np.float32),fs)) for c,f in zip(cks,fns)]
    for j,(name,s) in enumerate(sig):
        ax[i,j].specgram(s+1e-9,NFFT=int(fs*0.032),Fs=fs,noverlap=int(fs*0.016),vmin=-130,vmax=-30)
        ax[i,j].set_title(f'{name} {r.id} {fs} snr {r.snr_dB:.1f} {r.augmentation[:30]}',fontsize=8)
plt.tight_layout(); plt.savefig(sys.argv[1],dpi=60)
