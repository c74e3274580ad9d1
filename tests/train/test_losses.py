"""Losses: values on known inputs, zero at the target, MP-SENet's phase terms, GAN losses."""
from __future__ import annotations

import math

import pytest
import torch

from use_repro.audio.stft import mag_pha_istft, mag_pha_stft
from use_repro.train.losses import (DEFAULT_WEIGHTS, LOSS_NAMES, REGRESSION_WEIGHTS, anti_wrap, canonical,
                                    loss_adversarial, loss_complex, loss_consistency,
                                    loss_discriminator, loss_feature_matching, loss_magnitude,
                                    loss_phase, loss_time, phase_terms, reconstruction_losses,
                                    reconstruction_losses_spec, weighted_sum)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def analysis(x, fs):
    return dict(zip(("mag_c", "pha", "com"), mag_pha_stft(x, fs)), wav=x)


def test_names():
    assert LOSS_NAMES == ("magnitude", "complex", "phase", "time", "consistency", "adversarial",
                          "feature_matching")
    assert set(DEFAULT_WEIGHTS) == set(LOSS_NAMES)
    assert set(REGRESSION_WEIGHTS) == {"magnitude", "complex", "phase", "time", "consistency"}
    assert canonical("loss_phase") == "phase"
    with pytest.raises(KeyError):
        canonical("loss_nope")


def test_config_defaults_are_these_weights():
    from use_repro.config import fill_defaults, load_schema

    train = fill_defaults({}, load_schema())["train"]
    assert train["gan_loss_weights"] == DEFAULT_WEIGHTS
    assert train["loss_weights"] == REGRESSION_WEIGHTS


def test_zero_at_the_target():
    x = 0.1 * torch.randn(2, 3200)
    ref = analysis(x, 16000)
    losses = reconstruction_losses_spec(ref, ref, 16000)
    assert set(losses) == {"magnitude", "complex", "phase", "time", "consistency"}
    for name, v in losses.items():
        assert v.item() == pytest.approx(0.0, abs=1e-6), name


def test_simple_values():
    a, b = torch.zeros(1, 3, 4), torch.ones(1, 3, 4)
    assert loss_magnitude(a, b).item() == 1.0
    assert loss_complex(torch.zeros(1, 3, 4, 2), torch.ones(1, 3, 4, 2)).item() == 2.0
    assert loss_time(torch.zeros(1, 10), torch.full((1, 10), 0.5)).item() == 0.5


def test_anti_wrapping():
    x = torch.tensor([0.1, 2 * math.pi + 0.1, -2 * math.pi - 0.1, math.pi - 0.01])
    torch.testing.assert_close(anti_wrap(x), torch.tensor([0.1, 0.1, 0.1, math.pi - 0.01]))


def test_phase_invariant_to_2pi_and_matches_mp_senet_matrices():
    g = torch.Generator().manual_seed(0)
    pha = (torch.rand(2, 7, 5, generator=g) * 2 - 1) * math.pi
    est = pha + 0.3 * torch.randn(2, 7, 5, generator=g)
    assert loss_phase(est + 2 * math.pi, pha).item() == pytest.approx(loss_phase(est, pha).item(), abs=1e-5)
    # MP-SENet builds group delay / IAF with difference matrices (x[k-1] - x[k], x[-1] = 0)
    f, n = pha.shape[1:]
    gd_m = torch.triu(torch.ones(f, f), 1) - torch.triu(torch.ones(f, f), 2) - torch.eye(f)
    iaf_m = torch.triu(torch.ones(n, n), 1) - torch.triu(torch.ones(n, n), 2) - torch.eye(n)
    gd = anti_wrap(est.transpose(1, 2) @ gd_m - pha.transpose(1, 2) @ gd_m).mean()
    iaf = anti_wrap(est @ iaf_m - pha @ iaf_m).mean()
    terms = phase_terms(est, pha)
    assert terms["gd"].item() == pytest.approx(gd.item(), abs=1e-6)
    assert terms["iaf"].item() == pytest.approx(iaf.item(), abs=1e-6)


def test_consistency_zero_for_consistent_spectra_and_positive_otherwise():
    fs = 8000
    x = 0.1 * torch.randn(1, 1600)
    mag_c, pha, com = mag_pha_stft(x, fs)
    wav = mag_pha_istft(mag_c, pha, fs, x.shape[-1])
    assert loss_consistency(com, wav, fs).item() < 1e-8
    pha2 = torch.rand_like(pha) * 2 * math.pi                  # random phase: inconsistent
    com2 = torch.stack([mag_c * torch.cos(pha2), mag_c * torch.sin(pha2)], -1)
    wav2 = mag_pha_istft(mag_c, pha2, fs, x.shape[-1])
    assert loss_consistency(com2, wav2, fs).item() > 1e-3


def test_waveform_losses_for_validation():
    x = 0.1 * torch.randn(1, 2000)
    y = x + 0.01 * torch.randn(1, 2000)
    out = reconstruction_losses(y, x, 16000, names=["magnitude", "phase", "time"])
    assert list(out) == ["magnitude", "phase", "time"]
    assert all(v.item() > 0 for v in out.values())
    assert reconstruction_losses(x, x, 16000, names=["loss_time"])["time"].item() == 0.0


def test_gan_losses():
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert loss_adversarial(ones).item() == 0.0 and loss_adversarial(zeros).item() == 1.0
    assert loss_discriminator(ones, zeros).item() == 0.0
    assert loss_discriminator(zeros, ones).item() == 2.0
    real = [torch.ones(2, 3), torch.zeros(2, 1)]
    fake = [torch.zeros(2, 3, requires_grad=True), torch.zeros(2, 1, requires_grad=True)]
    fm = loss_feature_matching(real, fake)
    assert fm.item() == pytest.approx(0.5)
    fm.backward()
    assert fake[0].grad is not None


def test_gradients_flow_through_every_reconstruction_loss():
    fs = 16000
    x = 0.1 * torch.randn(1, 1600)
    ref = analysis(x, fs)
    mag_c = (ref["mag_c"] + 0.1).requires_grad_(True)
    pha = (ref["pha"] + 0.1).requires_grad_(True)
    com = torch.stack([mag_c * torch.cos(pha), mag_c * torch.sin(pha)], -1)
    losses = reconstruction_losses_spec(dict(mag_c=mag_c, pha=pha, com=com), ref, fs)
    total = weighted_sum(losses, REGRESSION_WEIGHTS)
    total.backward()
    assert torch.isfinite(mag_c.grad).all() and mag_c.grad.abs().sum() > 0
    assert torch.isfinite(pha.grad).all() and pha.grad.abs().sum() > 0
