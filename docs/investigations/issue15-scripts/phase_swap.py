"""Does the model's phase help or hurt? Score a regression checkpoint on the qeval.py test rows
as it is, and with its magnitude put on the *noisy* phase (its phase head discarded).

    OUT=/tmp/s5 python docs/investigations/issue15-scripts/phase_swap.py 30 CKPT
"""
import os, sys
import numpy as np, soundfile as sf, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testrows import rows, score, noisy_scores, report
from use_repro.enhance import load_enhancer, enhance_signal
from use_repro.audio.stft import mag_pha_stft, mag_pha_istft

N = int(sys.argv[1]); base = noisy_scores(N)
model = load_enhancer(sys.argv[2])


def noisy_phase(x, fs):
    with torch.no_grad():
        mag_c, pha, _ = mag_pha_stft(x, fs)
        out_mag_c, _, _ = model(mag_c, pha)
        return mag_pha_istft(out_mag_c, pha, fs, x.shape[-1])


def own(x, fs):
    with torch.no_grad():
        return model.enhance_waveform(x, fs)


out = {'model': [], 'model magnitude, noisy phase': []}
for r in rows(N).itertuples():
    x, fs = sf.read(r.noisy_path); y, _ = sf.read(r.clean_path)
    for name, fn in (('model', own), ('model magnitude, noisy phase', noisy_phase)):
        out[name].append(score(enhance_signal(fn, x.astype(np.float32), fs), y, fs))
for name, scores in out.items():
    report(name, scores, base)
