"""What qeval.py, oracle_test.py and phase_swap.py share: the test rows, the five scores and
Noisy's scores (cached in $OUT). Run the scripts from the repository root."""
import os, sys
import pandas as pd, soundfile as sf, torch
sys.path.insert(0, 'src'); torch.set_num_threads(1)
from use_repro.metrics.nonintrusive import DNSMOS, DistillMOS, speechmos_dnsmos_onnx
from use_repro.metrics.intrusive import pesq_score, estoi_score, sdr_score

_dnsmos, _distill = DNSMOS(speechmos_dnsmos_onnx()), DistillMOS()


def rows(n):
    """Every (60 // n)-th row of results/small's test meta.tsv, n of them."""
    m = pd.read_csv('results/small/simulation/test/meta.tsv', sep='\t')
    return m.iloc[::max(1, 60 // n)][:n]


def score(x, y, fs):
    """DNSMOS, DistillMOS of x; PESQ, ESTOI, SDR of x against the reference y."""
    return dict(DNSMOS=_dnsmos(x, fs)['DNSMOS'], DistillMOS=_distill(x, fs)['DistillMOS'],
                PESQ=pesq_score(y, x, fs), ESTOI=estoi_score(y, x, fs), SDR=sdr_score(y, x))


def noisy_scores(n):
    """Noisy's scores on rows(n), computed once and cached as $OUT/noisy_scores_<n>.csv."""
    cache = os.path.join(os.environ.get('OUT', '/tmp/s5'), 'noisy_scores_%d.csv' % n)
    if os.path.exists(cache):
        return pd.read_csv(cache)
    base = pd.DataFrame([score(sf.read(r.noisy_path)[0], sf.read(r.clean_path)[0], r.fs)
                         for r in rows(n).itertuples()])
    base.to_csv(cache, index=False)
    return base


def report(name, scores, base):
    """Print the mean gains of `scores` (a list of score dicts) over `base`."""
    print(name, (pd.DataFrame(scores).mean() - base.mean()).round(3).to_dict(), flush=True)
