"""Ceiling of magnitude masking on the test rows: an oracle ratio mask min(|S|/|X|, 1) applied to
the noisy STFT (noisy phase; and with the reference's phase), scored as qeval.py scores a model
(gains over Noisy, early reference).

    OUT=/tmp/s5 python docs/investigations/issue15-scripts/oracle_test.py 30
"""
import os, sys
import numpy as np, soundfile as sf
from scipy import signal
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testrows import rows, score, noisy_scores, report

N = int(sys.argv[1]); base = noisy_scores(N)
out = {'mask': [], 'mask_clean_phase': []}
for r in rows(N).itertuples():
    x, fs = sf.read(r.noisy_path); y, _ = sf.read(r.clean_path)
    nper = int(0.032 * fs); hop = nper // 4
    _, _, X = signal.stft(x, fs, nperseg=nper, noverlap=nper - hop)
    _, _, S = signal.stft(y, fs, nperseg=nper, noverlap=nper - hop)
    mask = np.minimum(np.abs(S) / np.maximum(np.abs(X), 1e-12), 1.0)
    for name, Z in (('mask', mask * X), ('mask_clean_phase', mask * np.abs(X) * np.exp(1j * np.angle(S)))):
        _, z = signal.istft(Z, fs, nperseg=nper, noverlap=nper - hop)
        out[name].append(score(np.pad(z, (0, max(0, len(x) - len(z))))[:len(x)], y, fs))
for name, scores in out.items():
    report(name, scores, base)
