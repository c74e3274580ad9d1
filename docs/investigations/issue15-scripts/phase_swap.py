"""Does the model's phase help or hurt? Score a regression checkpoint on the qeval.py test rows
as it is, and with its magnitude put on the *noisy* phase (its phase head discarded).

    OUT=/tmp/s5 python docs/investigations/issue15-scripts/phase_swap.py 30 CKPT
"""
import os, sys
import numpy as np, pandas as pd, soundfile as sf, torch
sys.path.insert(0, 'src'); torch.set_num_threads(1)
from use_repro.metrics.nonintrusive import DNSMOS, DistillMOS, speechmos_dnsmos_onnx
from use_repro.metrics.intrusive import pesq_score, estoi_score, sdr_score
from use_repro.enhance import load_enhancer, enhance_signal
from use_repro.audio.stft import mag_pha_stft, mag_pha_istft
d = DNSMOS(speechmos_dnsmos_onnx()); q = DistillMOS()
m = pd.read_csv('results/small/simulation/test/meta.tsv', sep='\t')
N = int(sys.argv[1]); m = m.iloc[::max(1, 60 // N)][:N]
def score(x, y, fs):
    return dict(DNSMOS=d(x, fs)['DNSMOS'], DistillMOS=q(x, fs)['DistillMOS'], PESQ=pesq_score(y, x, fs),
                ESTOI=estoi_score(y, x, fs), SDR=sdr_score(y, x))
base = pd.read_csv(os.path.join(os.environ.get('OUT', '/tmp/s5'), 'noisy_scores_%d.csv' % N))
model = load_enhancer(sys.argv[2])
def noisy_phase(x, fs):
    with torch.no_grad():
        mag_c, pha, _ = mag_pha_stft(x, fs)
        out_mag_c, _, _ = model(mag_c, pha)
        return mag_pha_istft(out_mag_c, pha, fs, x.shape[-1])
def own(x, fs):
    with torch.no_grad():
        return model.enhance_waveform(x, fs)
rows = {'model': [], 'model magnitude, noisy phase': []}
for r in m.itertuples():
    x, fs = sf.read(r.noisy_path); y, _ = sf.read(r.clean_path)
    for name, fn in (('model', own), ('model magnitude, noisy phase', noisy_phase)):
        rows[name].append(score(enhance_signal(fn, x.astype(np.float32), fs), y, fs))
for name, rs in rows.items():
    print(name, (pd.DataFrame(rs).mean() - base.mean()).round(3).to_dict(), flush=True)
