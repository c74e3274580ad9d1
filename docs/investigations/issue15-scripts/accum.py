"""Experiment: B items per optimizer step (losses averaged), else identical to `train regression`."""
import sys, itertools
sys.path.insert(0, 'src')
B = int(sys.argv.pop(1))
from use_repro.train import regression as R, setup
orig_batches = setup.batches
def batches(dataset, ctx):
    make = orig_batches(dataset, ctx)
    def grouped(start):
        it = make(start * B)
        while True:
            yield [next(it) for _ in range(B)]
    return grouped
setup.batches = batches
from use_repro.train.losses import weighted_sum
class Task(R.RegressionTask):
    def training_step(self, batch, update):
        totals, logs = [], {}
        for item in batch:
            noisy, clean, fs = R.batch_tensors(item, self.info.device)
            x, ref = R.spectra(noisy, fs), R.spectra(clean, fs)
            est = R.output_spectra(self.net(x["mag_c"], x["pha"]), fs, clean.shape[-1])
            losses = R.recon_losses(est, ref, fs, self.weights)
            totals.append(weighted_sum(losses, self.weights))
            for k, v in losses.items(): logs[k] = logs.get(k, 0.0) + float(v.detach()) / len(batch)
        total = sum(totals) / len(totals)
        update("model", total)
        return {"loss": float(total.detach()), **logs}
R.RegressionTask = Task
from use_repro.cli import main
sys.exit(main())
