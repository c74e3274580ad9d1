"""Stages `gan` (the paper's two-stage correction) and `finetune` (the conventional baseline).

    use-repro train gan      --config CFG --init REG.pt --train-meta M [--valid-meta M] --target shifted --out DIR
    use-repro train finetune --config CFG --init REG.pt --train-meta M [--valid-meta M] --target shifted --out DIR

`gan` (Section 2.2, Figure 1): the regression model from `--init` is loaded and frozen; a
residual generator (6 USEMamba blocks in the paper, `model.generator` or `--size`) sees the noisy
input and the regression output and adds its correction to the latter. It trains against the
adaptive multi-band discriminator with adversarial (least squares, or hinge:
`train.gan_loss`), feature-matching and reconstruction losses (`train.gan_loss_weights`). The generator's last layers start at zero, so
before any step the two-stage model returns the regression output exactly. `final.pt` holds
the whole two-stage model (frozen regression weights included), so one file enhances.

`finetune` (Figure 9's baseline): the same regression model is itself fine-tuned with the same
adversarial objective and discriminator; `final.pt` is a USEMamba.

Each step: the discriminator update on (target, detached output), then the generator update;
real and enhanced speech go through the discriminator as one batch of two. In the generator
update the discriminator is frozen (no parameter gradients, no DDP traffic).

    use-repro train residual-correlation --checkpoint GAN.pt --test-meta M [--target T] --out FILE.json

Section 3.6: the mean over utterances of the Pearson correlation between the magnitude residuals
(target − regression) and (final − regression) of the two-stage model, on the model's compressed
magnitude (`--domain linear` for |X|).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from typing import Callable

import numpy as np
import torch

from use_repro.train import distributed as D
from use_repro.train import setup
from use_repro.train.arguments import TrainArgumentError, TrainRun, gan_arguments, residual_arguments
from use_repro.train.losses import (GAN_FORMS, loss_adversarial, loss_discriminator, loss_feature_matching,
                                    weighted_sum)
from use_repro.train.loop import FitResult, Trainer
from use_repro.train.regression import (batch_tensors, load_init, output_spectra,
                                        recon_losses, spectra, validate_fn)

log = logging.getLogger(__name__)


class AdversarialTask:
    """A generator model (TwoStage or USEMamba) against a multi-band discriminator."""

    def __init__(self, model: torch.nn.Module, disc: torch.nn.Module, weights: dict[str, float],
                 info: D.DistInfo, meta: dict, form: str = "lsgan"):
        self.model = model.to(info.device)
        self.disc = disc.to(info.device)
        self.g = D.wrap(self.model, info)  # DDP skips the frozen regression parameters
        # A rate below 48 kHz leaves the upper band stacks unused.
        self.d = D.wrap(self.disc, info, find_unused_parameters=True)
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        self.info, self.meta = info, meta
        if form not in GAN_FORMS:  # fail before the first step, not inside it
            raise ValueError(f"train.gan_loss: {form!r} is not one of {', '.join(GAN_FORMS)}")
        self.form = form

    def param_groups(self):
        return {"discriminator": dict(self.disc.named_parameters()),
                "generator": {n: p for n, p in self.model.named_parameters() if p.requires_grad}}

    def training_step(self, batch: dict, update: Callable) -> dict[str, float]:
        noisy, clean, fs = batch_tensors(batch, self.info.device)
        x, ref = spectra(noisy, fs), spectra(clean, fs)
        est = output_spectra(self.g(x["mag_c"], x["pha"]), fs, clean.shape[-1])

        scores, _ = self.d(torch.cat([clean, est["wav"].detach()]), fs)
        scores = scores.float()  # losses in float32 also under autocast
        loss_d = loss_discriminator(scores[:1], scores[1:], self.form)
        update("discriminator", loss_d)

        # The generator step runs the bare discriminator with its parameters frozen: no DDP
        # all-reduce and no parameter gradients for it, only the gradient to the generator.
        with D.frozen(self.disc):
            scores, feats = self.disc(torch.cat([clean, est["wav"]]), fs)
        scores, feats = scores.float(), [f.float() for f in feats]
        losses = recon_losses(est, ref, fs, self.weights)
        losses["adversarial"] = loss_adversarial(scores[1:], self.form)
        losses["feature_matching"] = loss_feature_matching([f[:1] for f in feats], [f[1:] for f in feats])
        total = weighted_sum(losses, self.weights)
        update("generator", total)
        return {"loss": float(total.detach()), "discriminator": float(loss_d.detach()),
                **{k: float(v.detach()) for k, v in losses.items()}}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "discriminator": self.disc.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.disc.load_state_dict(state["discriminator"])

    def train(self, mode: bool = True):
        self.model.train(mode)
        self.disc.train(mode)

    def export(self) -> dict:
        from use_repro.models.checkpoint import checkpoint_dict

        return checkpoint_dict(self.model, self.meta)

    def wave_fn(self):
        return self.model.enhance_waveform


# the options live in train/arguments.py (help without torch); the old names stay
add_arguments = gan_arguments


def train(args: TrainRun, stage: str, on_gradients=None) -> FitResult:
    """Run the `gan` or `finetune` stage `args` describes."""
    from use_repro.data.dataset import target_column
    from use_repro.models.build import build_discriminator, build_generator
    from use_repro.models.generator import TwoStage
    from use_repro.models.usemamba import USEMamba

    if stage not in ("gan", "finetune"):
        raise ValueError(f"unknown adversarial stage {stage!r}")
    target_column(args.target)
    ctx = setup.context(args, stage, args.target)
    init = load_init(args.init, ctx.info.device)
    if stage == "finetune":
        if not isinstance(init, USEMamba):
            raise TrainArgumentError(f"--init {args.init}: finetune needs a USEMamba regression model, got {type(init).__name__}")
        model = init
    elif isinstance(init, TwoStage):
        model = init
        log.info("gan: continuing the two-stage model of %s", args.init)
    elif isinstance(init, USEMamba):
        generator = setup.build(lambda: build_generator(ctx.profile.model_config(), args.size), ctx.init_seed)
        model = TwoStage.from_models(init, generator.to(ctx.info.device))
    else:
        raise TrainArgumentError(f"--init {args.init}: expected a USEMamba or TwoStage checkpoint, got {type(init).__name__}")
    model.train(True)
    setup.record_scan_backend(model, ctx)
    disc = setup.build(lambda: build_discriminator(ctx.profile.model_config()), ctx.init_seed + 1)
    dataset = setup.training_dataset(args, ctx)
    meta = {**ctx.meta(args), "init": args.init}
    task = AdversarialTask(model, disc, ctx.profile.train["gan_loss_weights"], ctx.info, meta,
                           ctx.profile.train["gan_loss"])
    val = setup.validator(args, ctx)
    trainer = Trainer(task, setup.batches(dataset, ctx), ctx.settings, ctx.out, ctx.info,
                      validate=validate_fn(val, task.wave_fn), on_gradients=on_gradients,
                      meta=meta, desc=f"{stage}[{args.target}]")
    return trainer.fit()


def run(args: argparse.Namespace, stage: str) -> int:
    try:
        train(TrainRun.from_namespace(args), stage)
    finally:
        D.shutdown()
    return 0


# --- Section 3.6: residual correlation -------------------------------------------------------

def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two equally shaped tensors (flattened); NaN if one is constant."""
    a = a.double().flatten() - a.double().mean()
    b = b.double().flatten() - b.double().mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else float("nan")


def residual_correlation(model: torch.nn.Module, rows: list[dict], domain: str = "compressed",
                         device: torch.device | str = "cpu") -> dict:
    """Per-utterance and mean correlation of (target − regression) with (final − regression).

    `model`: a two-stage model (`forward_both`). Signals are scaled as in training (unit-RMS
    noisy input); `domain` is `compressed` (log1p |X|, the model's own) or `linear` (|X|).
    """
    from use_repro.audio.io import read_audio
    from use_repro.audio.stft import decompress, mag_pha_stft
    from use_repro.data.dataset import normalize_pair
    from use_repro.progress import progress

    if not hasattr(model, "forward_both"):
        raise ValueError(f"residual correlation needs a two-stage model, got {type(model).__name__}")
    mag = (lambda m: m) if domain == "compressed" else decompress
    per = {}
    for row in progress(rows, desc="residual correlation"):
        noisy, fs = read_audio(row["noisy"])
        clean, _ = read_audio(row["clean"])
        n = min(len(noisy), len(clean))
        noisy, clean = normalize_pair(noisy[:n], clean[:n])
        x = torch.from_numpy(noisy).to(device)[None]
        with torch.inference_mode():
            mag_c, pha, _ = mag_pha_stft(x, fs)
            (fin, _, _), (reg, _, _) = model.forward_both(mag_c, pha)
            ref = mag_pha_stft(torch.from_numpy(clean).to(device)[None], fs)[0]
        per[row["id"]] = pearson(mag(ref) - mag(reg), mag(fin) - mag(reg))
    finite = [v for v in per.values() if math.isfinite(v)]
    return {"mean_correlation": float(np.mean(finite)) if finite else float("nan"),
            "utterances": len(per), "undefined": len(per) - len(finite), "domain": domain,
            "per_utterance": per}


add_residual_arguments = residual_arguments


def run_residual(args: argparse.Namespace) -> int:
    from use_repro.data.dataset import load_rows
    from use_repro.fs import write_text_atomic
    from use_repro.models.checkpoint import load_checkpoint

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = D.pick_device(args.device)
    model, extra = load_checkpoint(args.checkpoint, map_location=device)
    target = args.target or extra.get("target") or "shifted"
    rows = load_rows(args.test_meta, target, limit=args.limit or None)
    result = residual_correlation(model, rows, args.domain, device)
    result.update(checkpoint=str(args.checkpoint), test_meta=str(args.test_meta), target=target)
    write_text_atomic(args.out, json.dumps(result, indent=1, sort_keys=True) + "\n")
    log.info("residual correlation (%s, %d utterances, target %s): %.3f -> %s", args.domain,
             result["utterances"], target, result["mean_correlation"], args.out)
    return 0
