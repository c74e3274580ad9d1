"""Quick test-set check: DNSMOS, DistillMOS, PESQ, ESTOI, SDR gains over Noisy of each checkpoint
(early reference), on `testrows.rows(N)`.

    OUT=/tmp/s5 python docs/investigations/issue15-scripts/qeval.py 30 CKPT...
"""
import os, sys
import numpy as np, soundfile as sf
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testrows import rows, score, noisy_scores, report
from use_repro.enhance import load_enhancer, wave_fn, enhance_signal

N = int(sys.argv[1]); m = rows(N); base = noisy_scores(N)
print('noisy', base.mean().round(3).to_dict())
for ck in sys.argv[2:]:
    fn = wave_fn(load_enhancer(ck))
    out = []
    for r in m.itertuples():
        x, fs = sf.read(r.noisy_path); y, _ = sf.read(r.clean_path)
        out.append(score(enhance_signal(fn, x.astype(np.float32), fs), y, fs))
    report(ck, out, base)
