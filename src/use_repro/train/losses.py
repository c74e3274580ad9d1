"""Training losses: the MP-SENet / SEMamba reconstruction losses and the GAN losses.

Names. Each loss has one name, used as the key of the returned dicts, the key of its weight in
the profile's config and the column of the training logs and learning curves:

| name | function | what |
|---|---|---|
| ``magnitude``        | :func:`loss_magnitude`        | MSE of compressed magnitudes ``log1p(abs X)`` |
| ``complex``          | :func:`loss_complex`          | 2 x MSE of compressed complex spectra (``com``) |
| ``phase``            | :func:`loss_phase`            | anti-wrapped instantaneous phase + group delay + instantaneous angular frequency |
| ``time``             | :func:`loss_time`             | L1 of waveforms |
| ``consistency``      | :func:`loss_consistency`      | 2 x MSE between ``com`` and the STFT of its own iSTFT |
| ``adversarial``      | :func:`loss_adversarial`      | GAN, generator side (least squares: mean (1 - D(fake))^2) |
| ``feature_matching`` | :func:`loss_feature_matching` | L1 between discriminator feature maps of real and fake |
| ``discriminator``    | :func:`loss_discriminator`    | GAN, discriminator side |

GAN loss form (``train.gan_loss``, :data:`GAN_FORMS`): ``lsgan`` (default) is the least-squares
form of DAC (Kumar et al., 2023, whose multi-band discriminator the paper's adapts;
``dac/nn/loss.py`` ``GANLoss``), HiFi-GAN and SEMamba's MetricGAN discriminator (an MSE to the
target score); ``hinge`` is SoundStream's / EnCodec's: the discriminator minimises
mean relu(1 - D(real)) + mean relu(1 + D(fake)), the generator mean relu(1 - D(fake)) (bounded
below by 0, like the least-squares term, so the logged curve stays comparable). The paper names
neither.

``DEFAULT_WEIGHTS`` are the defaults of the profile's ``train.gan_loss_weights`` (and, for the
reconstruction terms, of ``train.loss_weights``); the paper gives no weights. Reconstruction:
SEMamba's published weights (recipe ``SEMamba_advanced.yaml``: magnitude 0.9, phase 0.3, complex
0.1, time 0.2, consistency 0.1). GAN: HiFi-GAN/DAC's 1 : 2 adversarial : feature-matching ratio,
scaled to 0.05 : 0.1 so the GAN terms do not swamp the reconstruction terms at the start
(SEMamba's metric-discriminator term also has weight 0.05). The trainer reads the config.

Conventions: spectra ``[B, F, N]`` (``com`` ``[B, F, N, 2]``), waveforms ``[B, T]``; every loss
is a scalar mean, so it does not depend on batch size, length or rate. The factor 2 of the
complex and consistency losses and the phase terms' definitions (including the boundary term of
the group delay and the instantaneous angular frequency: the first bin/frame is differenced
against 0) follow MP-SENet exactly.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from use_repro.audio.stft import mag_pha_istft, mag_pha_stft

RECONSTRUCTION = ("magnitude", "complex", "phase", "time", "consistency")
GAN = ("adversarial", "feature_matching")
LOSS_NAMES = RECONSTRUCTION + GAN
DISCRIMINATOR = "discriminator"
# train.gan_loss: the adversarial objective's form (the first is the default)
GAN_FORMS = ("lsgan", "hinge")

DEFAULT_WEIGHTS: dict[str, float] = {
    "magnitude": 0.9, "complex": 0.1, "phase": 0.3, "time": 0.2, "consistency": 0.1,
    "adversarial": 0.05, "feature_matching": 0.1,
}
REGRESSION_WEIGHTS: dict[str, float] = {k: DEFAULT_WEIGHTS[k] for k in RECONSTRUCTION}


def canonical(name: str) -> str:
    """``loss_magnitude`` / ``magnitude`` -> ``magnitude`` (raises on an unknown name)."""
    base = name[5:] if name.startswith("loss_") else name
    if base not in LOSS_NAMES and base != DISCRIMINATOR:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(LOSS_NAMES + (DISCRIMINATOR,))}")
    return base


# --- reconstruction -------------------------------------------------------------------------

def loss_magnitude(mag_c_hat: torch.Tensor, mag_c: torch.Tensor) -> torch.Tensor:
    """MSE of compressed magnitudes ``[B, F, N]``."""
    return F.mse_loss(mag_c_hat, mag_c)


def loss_complex(com_hat: torch.Tensor, com: torch.Tensor) -> torch.Tensor:
    """2 x MSE of compressed complex spectra ``[B, F, N, 2]`` (MP-SENet's factor)."""
    return 2.0 * F.mse_loss(com_hat, com)


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """``|x - 2 pi round(x / 2 pi)|``: the distance of a phase difference to the nearest 2 pi k."""
    return torch.abs(x - torch.round(x / (2 * math.pi)) * (2 * math.pi))


def _delta(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x[k] - x[k-1] along ``dim`` with x[-1] = 0 (MP-SENet's difference matrices)."""
    return torch.diff(x, dim=dim, prepend=torch.zeros_like(x.narrow(dim, 0, 1)))


def phase_terms(pha_hat: torch.Tensor, pha: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three anti-wrapped phase losses of MP-SENet, phases ``[B, F, N]``.

    ``ip``: instantaneous phase; ``gd``: group delay (difference along frequency);
    ``iaf``: instantaneous angular frequency (difference along time).
    """
    return {
        "ip": anti_wrap(pha_hat - pha).mean(),
        "gd": anti_wrap(_delta(pha_hat, -2) - _delta(pha, -2)).mean(),
        "iaf": anti_wrap(_delta(pha_hat, -1) - _delta(pha, -1)).mean(),
    }


def loss_phase(pha_hat: torch.Tensor, pha: torch.Tensor) -> torch.Tensor:
    """Instantaneous phase + group delay + instantaneous angular frequency losses (summed)."""
    t = phase_terms(pha_hat, pha)
    return t["ip"] + t["gd"] + t["iaf"]


def loss_time(wav_hat: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
    """L1 of waveforms ``[B, T]`` (the shorter length is used if they differ by a few samples)."""
    n = min(wav_hat.shape[-1], wav.shape[-1])
    return F.l1_loss(wav_hat[..., :n], wav[..., :n])


def loss_consistency(com_hat: torch.Tensor, wav_hat: torch.Tensor, fs: int) -> torch.Tensor:
    """2 x MSE between a predicted ``com`` and the ``com`` of the STFT of its iSTFT ``wav_hat``.

    ``wav_hat`` must be the iSTFT of the same prediction (``mag_pha_istft(mag_c, pha, fs, T)``);
    an STFT-consistent prediction scores 0. If the re-analysis has a frame more or less (a length
    not a multiple of the hop), the common frames are compared.
    """
    com_re = mag_pha_stft(wav_hat, fs)[2]
    n = min(com_hat.shape[-2], com_re.shape[-2])
    return 2.0 * F.mse_loss(com_hat[..., :n, :], com_re[..., :n, :])


def reconstruction_losses_spec(est: dict, ref: dict, fs: int,
                               names: Iterable[str] = RECONSTRUCTION) -> dict[str, torch.Tensor]:
    """Reconstruction losses of a model's spectral output against a reference.

    ``est``: ``{"mag_c", "pha", "com"}`` ``[B, F, N]`` (the model's outputs) and, if ``time`` or
    ``consistency`` is asked, ``"wav"`` ``[B, T]`` — the iSTFT of the prediction (computed here
    when absent). ``ref``: ``{"mag_c", "pha", "com", "wav"}`` of the target (the output of
    :func:`use_repro.audio.stft.mag_pha_stft` and the waveform).
    Returns ``{name: scalar tensor}`` for the requested names.
    """
    names = [canonical(n) for n in names]
    out: dict[str, torch.Tensor] = {}
    wav_hat = est.get("wav")
    if wav_hat is None and ("time" in names or "consistency" in names):
        wav_hat = mag_pha_istft(est["mag_c"], est["pha"], fs, ref["wav"].shape[-1])
    for name in names:
        if name == "magnitude":
            out[name] = loss_magnitude(est["mag_c"], ref["mag_c"])
        elif name == "complex":
            out[name] = loss_complex(est["com"], ref["com"])
        elif name == "phase":
            out[name] = loss_phase(est["pha"], ref["pha"])
        elif name == "time":
            out[name] = loss_time(wav_hat, ref["wav"])
        elif name == "consistency":
            out[name] = loss_consistency(est["com"], wav_hat, fs)
        else:
            raise KeyError(f"{name!r} is not a reconstruction loss ({', '.join(RECONSTRUCTION)})")
    return out


def reconstruction_losses(wav_hat: torch.Tensor, wav: torch.Tensor, fs: int,
                          names: Iterable[str] = RECONSTRUCTION) -> dict[str, torch.Tensor]:
    """Reconstruction losses between two *waveforms* ``[B, T]`` (validation curves, Figure 9).

    Both are analysed with the SFI STFT, so the regression model, the fine-tuned model and the
    two-stage model are compared on the same footing; ``consistency`` is then 0 by construction.
    """
    n = min(wav_hat.shape[-1], wav.shape[-1])
    wav_hat, wav = wav_hat[..., :n], wav[..., :n]
    e = dict(zip(("mag_c", "pha", "com"), mag_pha_stft(wav_hat, fs)), wav=wav_hat)
    r = dict(zip(("mag_c", "pha", "com"), mag_pha_stft(wav, fs)), wav=wav)
    return reconstruction_losses_spec(e, r, fs, names)


# --- GAN ------------------------------------------------------------------------------------

def _scores(x) -> list[torch.Tensor]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _form(form: str) -> str:
    if form not in GAN_FORMS:
        raise ValueError(f"GAN loss form {form!r} (config key train.gan_loss); choose one of {', '.join(GAN_FORMS)}")
    return form


def loss_adversarial(fake_scores: torch.Tensor | Sequence[torch.Tensor], form: str = "lsgan") -> torch.Tensor:
    """GAN loss, generator side, averaged over discriminators: ``lsgan`` mean (1 - D(fake))^2,
    ``hinge`` mean relu(1 - D(fake))."""
    s, form = _scores(fake_scores), _form(form)
    if form == "hinge":
        return sum(torch.mean(F.relu(1.0 - f)) for f in s) / len(s)
    return sum(torch.mean((1.0 - f) ** 2) for f in s) / len(s)


def loss_discriminator(real_scores: torch.Tensor | Sequence[torch.Tensor],
                       fake_scores: torch.Tensor | Sequence[torch.Tensor], form: str = "lsgan") -> torch.Tensor:
    """GAN loss, discriminator side, averaged over discriminators: ``lsgan`` mean (1 - D(real))^2
    + mean D(fake)^2, ``hinge`` mean relu(1 - D(real)) + mean relu(1 + D(fake)).

    Pass the fake scores of a *detached* generator output.
    """
    r, f, form = _scores(real_scores), _scores(fake_scores), _form(form)
    if len(r) != len(f):
        raise ValueError("loss_discriminator: as many real as fake scores are needed")
    if form == "hinge":
        return sum(torch.mean(F.relu(1.0 - a)) + torch.mean(F.relu(1.0 + b)) for a, b in zip(r, f)) / len(r)
    return sum(torch.mean((1.0 - a) ** 2) + torch.mean(b ** 2) for a, b in zip(r, f)) / len(r)


def loss_feature_matching(real_features: Sequence[torch.Tensor],
                          fake_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 distance between real and fake feature maps.

    Real features are detached (the generator must not move the discriminator's view of real
    speech). By the paper's Eq. 3 this term vanishes where the output already matches the target.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError("loss_feature_matching: feature lists differ in length or are empty")
    total = sum(F.l1_loss(f, r.detach()) for r, f in zip(real_features, fake_features))
    return total / len(real_features)


def weighted_sum(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum(weights[name] * loss)`` over the losses that have a weight (others are logged only)."""
    terms = [float(weights[k]) * v for k, v in losses.items() if k in weights and float(weights[k]) != 0.0]
    if not terms:
        raise ValueError("weighted_sum: no loss has a non-zero weight")
    return sum(terms)
