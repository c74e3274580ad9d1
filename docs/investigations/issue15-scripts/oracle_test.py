"""Ceiling of magnitude masking on the test rows: an oracle ratio mask min(|S|/|X|, 1) applied to
the noisy STFT (noisy phase), scored as qeval.py scores a model (gains over Noisy, early reference).

    OUT=/tmp/s5 python docs/investigations/issue15-scripts/oracle_test.py 30
"""
import os, sys
import numpy as np, pandas as pd, soundfile as sf, torch
from scipy import signal
sys.path.insert(0, 'src'); torch.set_num_threads(1)
from use_repro.metrics.nonintrusive import DNSMOS, DistillMOS, speechmos_dnsmos_onnx
from use_repro.metrics.intrusive import pesq_score, estoi_score, sdr_score
d = DNSMOS(speechmos_dnsmos_onnx()); q = DistillMOS()
m = pd.read_csv('results/small/simulation/test/meta.tsv', sep='\t')
N = int(sys.argv[1]); m = m.iloc[::max(1, 60 // N)][:N]
def score(x, y, fs):
    return dict(DNSMOS=d(x, fs)['DNSMOS'], DistillMOS=q(x, fs)['DistillMOS'], PESQ=pesq_score(y, x, fs),
                ESTOI=estoi_score(y, x, fs), SDR=sdr_score(y, x))
base = pd.read_csv(os.path.join(os.environ.get('OUT', '/tmp/s5'), 'noisy_scores_%d.csv' % N))
rows = {'mask': [], 'mask_clean_phase': []}
for r in m.itertuples():
    x, fs = sf.read(r.noisy_path); y, _ = sf.read(r.clean_path)
    nper = int(0.032 * fs); hop = nper // 4
    _, _, X = signal.stft(x, fs, nperseg=nper, noverlap=nper - hop)
    _, _, S = signal.stft(y, fs, nperseg=nper, noverlap=nper - hop)
    mask = np.minimum(np.abs(S) / np.maximum(np.abs(X), 1e-12), 1.0)
    for name, Z in (('mask', mask * X), ('mask_clean_phase', mask * np.abs(X) * np.exp(1j * np.angle(S)))):
        _, z = signal.istft(Z, fs, nperseg=nper, noverlap=nper - hop)
        z = np.pad(z, (0, max(0, len(x) - len(z))))[:len(x)]
        rows[name].append(score(z, y, fs))
for name, rs in rows.items():
    e = pd.DataFrame(rs); print(name, (e.mean() - base.mean()).round(3).to_dict(), flush=True)
