"""Stage `regression`: USEMamba trained on one target with the reconstruction losses.

    use-repro train regression --config CFG --train-meta M [--valid-meta M] --target shifted
        [--speech-list SCP] [--size NAME] [--init CKPT] [--steps N] --out DIR

The objective is `train.loss_weights` (SEMamba's magnitude, phase, complex, time and
consistency losses) on the chosen target: `early` (the challenge's), `shifted` (the paper's),
`anechoic`, or an early-reflection window `early<W>ms` (Figure 3(b)). `--init` starts from a
trained model (e.g. the paper's final fine-tuning on the cleanest subset, Section 3.8) instead
of a fresh initialisation. Writes DIR/final.pt (a USEMamba checkpoint `use-repro enhance` loads),
DIR/curves.csv, DIR/train_log.csv and DIR/checkpoints/.
"""
from __future__ import annotations

import argparse
import logging
from typing import Callable

import torch

from use_repro.audio.stft import mag_pha_istft, mag_pha_stft
from use_repro.train import distributed as D
from use_repro.train import setup
from use_repro.train.arguments import TrainArgumentError, TrainRun
from use_repro.train.arguments import common_arguments, regression_arguments  # noqa: F401 (re-exported)
from use_repro.train.losses import RECONSTRUCTION, reconstruction_losses_spec, weighted_sum
from use_repro.train.loop import FitResult, Trainer

log = logging.getLogger(__name__)


def spectra(wav: torch.Tensor, fs: int) -> dict[str, torch.Tensor]:
    """{"mag_c", "pha", "com", "wav"} of a waveform [B, T], in float32 outside autocast."""
    with torch.autocast(wav.device.type, enabled=False):
        mag_c, pha, com = mag_pha_stft(wav.float(), fs)
    return {"mag_c": mag_c, "pha": pha, "com": com, "wav": wav}


def output_spectra(out: tuple, fs: int, length: int) -> dict[str, torch.Tensor]:
    """A model's (mag_c, pha, com) as float32, with its waveform (iSTFT) for the time losses."""
    mag_c, pha, com = (t.float() for t in out)
    with torch.autocast(mag_c.device.type, enabled=False):
        wav = mag_pha_istft(mag_c, pha, fs, length)
    return {"mag_c": mag_c, "pha": pha, "com": com, "wav": wav}


def recon_losses(est: dict, ref: dict, fs: int, weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """The reconstruction losses that have a non-zero weight."""
    names = [n for n in RECONSTRUCTION if float(weights.get(n, 0.0)) != 0.0]
    with torch.autocast(ref["wav"].device.type, enabled=False):
        return reconstruction_losses_spec(est, ref, fs, names)


def batch_tensors(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(noisy [1, T], clean [1, T], fs) on `device` from a dataset item."""
    return (batch["noisy"].to(device, non_blocking=True)[None],
            batch["clean"].to(device, non_blocking=True)[None], int(batch["fs"]))


class RegressionTask:
    """One model, one optimiser, the weighted reconstruction losses."""

    def __init__(self, model: torch.nn.Module, weights: dict[str, float], info: D.DistInfo, meta: dict):
        self.model = model.to(info.device)
        self.net = D.wrap(self.model, info)
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        self.info, self.meta = info, meta

    def param_groups(self):
        return {"model": dict(self.model.named_parameters())}

    def training_step(self, batch: dict, update: Callable) -> dict[str, float]:
        noisy, clean, fs = batch_tensors(batch, self.info.device)
        x, ref = spectra(noisy, fs), spectra(clean, fs)
        est = output_spectra(self.net(x["mag_c"], x["pha"]), fs, clean.shape[-1])
        losses = recon_losses(est, ref, fs, self.weights)
        total = weighted_sum(losses, self.weights)
        update("model", total)
        return {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])

    def train(self, mode: bool = True):
        self.model.train(mode)

    def export(self) -> dict:
        from use_repro.models.checkpoint import checkpoint_dict

        return checkpoint_dict(self.model, self.meta)

    def wave_fn(self):
        return self.model.enhance_waveform


def load_init(path: str, device: torch.device) -> torch.nn.Module:
    from use_repro.models.checkpoint import load_model

    return load_model(path, map_location=device)


def validate_fn(validator, wave_fn) -> Callable[[int], dict] | None:
    if validator is None:
        return None
    return lambda step: validator(wave_fn())


# the options live in train/arguments.py (help without torch); the old names stay
add_arguments = regression_arguments


def train(args: TrainRun, on_gradients=None) -> FitResult:
    """Run the regression stage `args` describes (see the module docstring)."""
    from use_repro.data.dataset import target_column
    from use_repro.models.build import build_regression
    from use_repro.models.usemamba import USEMamba

    target_column(args.target)  # fail early on a misspelt target
    ctx = setup.context(args, "regression", args.target)
    if args.init:
        model = load_init(args.init, ctx.info.device)
        if not isinstance(model, USEMamba):
            raise TrainArgumentError(f"--init {args.init}: a {type(model).__name__}, not a USEMamba regression model")
        log.info("regression: starting from %s", args.init)
    else:
        model = setup.build(lambda: build_regression(ctx.profile.model_config(), args.size), ctx.init_seed)
    model.train(True)
    setup.record_scan_backend(model, ctx)
    dataset = setup.training_dataset(args, ctx)
    task = RegressionTask(model, ctx.profile.train["loss_weights"], ctx.info, ctx.meta(args))
    val = setup.validator(args, ctx)
    trainer = Trainer(task, setup.batches(dataset, ctx), ctx.settings, ctx.out, ctx.info,
                      validate=validate_fn(val, task.wave_fn), on_gradients=on_gradients,
                      meta=ctx.meta(args), desc=f"regression[{args.target}]")
    return trainer.fit()


def run(args: argparse.Namespace) -> int:
    try:
        train(TrainRun.from_namespace(args))
    finally:
        D.shutdown()
    return 0
