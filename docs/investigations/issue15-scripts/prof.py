import sys, time, torch, yaml
sys.path.insert(0, 'src')
torch.set_num_threads(1)
from use_repro.config import load_config
from use_repro.models.build import build_regression
from use_repro.train.regression import spectra, output_spectra, recon_losses
from use_repro.train.losses import weighted_sum, REGRESSION_WEIGHTS
cfg = load_config('small')
m = build_regression(cfg, '')
opt = torch.optim.AdamW(m.parameters(), 1e-3)
for fs in (8000, 48000):
    noisy = torch.randn(1, 2*fs)*0.05; clean = torch.randn(1, 2*fs)*0.05
    def step():
        x, ref = spectra(noisy, fs), spectra(clean, fs)
        est = output_spectra(m(x['mag_c'], x['pha']), fs, clean.shape[-1])
        tot = weighted_sum(recon_losses(est, ref, fs, REGRESSION_WEIGHTS), REGRESSION_WEIGHTS)
        opt.zero_grad(); tot.backward(); opt.step()
    step()
    t=time.time(); step(); step(); print(fs, 'step', (time.time()-t)/2)
    with torch.profiler.profile() as p: step()
    print(p.key_averages().table(sort_by='self_cpu_time_total', row_limit=18))
