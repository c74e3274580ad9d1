"""USEMamba, the residual generator and the two-stage model at every rate."""
from __future__ import annotations

import math

import pytest
import torch

from use_repro.audio.stft import RATES, mag_pha_stft, num_bins
from use_repro.models.generator import ResidualGenerator, TwoStage
from use_repro.models.usemamba import (PAPER_REGRESSION, USEMamba, USEMambaConfig,
                                       count_parameters)

SMALL = dict(num_blocks=1, channels=8, d_state=4, d_conv=4, expand=2, dense_depth=2)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    reg = USEMamba(SMALL).eval()
    gen = ResidualGenerator(SMALL).eval()
    return reg, gen


def spec(fs, seconds=0.13, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(batch, int(seconds * fs), generator=g)
    return x, *mag_pha_stft(x, fs)


@pytest.mark.parametrize("fs", RATES)
def test_shapes_at_every_rate(models, fs):
    reg, gen = models
    x, mag_c, pha, com = spec(fs)
    with torch.no_grad():
        out = reg(mag_c, pha)
        assert [o.shape for o in out] == [mag_c.shape, pha.shape, com.shape]
        assert mag_c.shape[1] == num_bins(fs)
        g = gen(mag_c, pha, out[0], out[1])
        assert [o.shape for o in g] == [mag_c.shape, pha.shape, com.shape]
        assert reg.enhance_waveform(x, fs).shape == x.shape
        assert all(torch.isfinite(o).all() for o in out + g)


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 9])
def test_any_length(models, frames):
    reg, _ = models
    mag_c, pha = torch.rand(1, 161, frames), torch.rand(1, 161, frames)
    with torch.no_grad():
        assert reg(mag_c, pha)[0].shape == (1, 161, frames)


def test_encoder_downsamples_time_4_frequency_2(models):
    # the release: input padded by 2 frames and 2 bins, then a (1, 3) conv of stride (4, 2), no
    # padding: N' = (N + 1) // 4 + 1, F' = (F - 1) // 2 + 1
    reg, _ = models
    x = torch.randn(1, 2, 40 + 2, 321 + 2)              # [B, in, N + 2, F + 2]
    with torch.no_grad():
        z = reg.dense_encoder(x)
    assert z.shape == (1, 8, 11, 161)


def test_decoders_upsample_frequency_then_time_with_the_release_channel_order():
    from use_repro.models.usemamba import SPConvTranspose2d
    up = SPConvTranspose2d(1, 1, 3)
    with torch.no_grad():
        up.conv.weight.zero_()
        up.conv.weight[:, 0, 0, 1] = 1.0                 # identity taps: out channel j = input
        up.conv.bias.copy_(torch.tensor([0.0, 10.0, 20.0]))
    x = torch.arange(4.0).view(1, 1, 1, 4)
    # position w * r + j holds conv channel j: x[w] + 10 j
    assert up(x).flatten().tolist() == [0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23]


def test_phase_in_range_and_residual_magnitude(models):
    reg, _ = models
    _, mag_c, pha, _ = spec(16000)
    with torch.no_grad():
        _, p, _ = reg(mag_c, pha)
    assert p.abs().max() <= math.pi + 1e-6


def test_residual_phase_starts_at_the_noisy_phase_and_learns():
    # pha_mode="residual": the phase heads start as the identity rotation, so before training the
    # output phase is the noisy phase exactly; one gradient step moves it away from it
    torch.manual_seed(1)
    reg = USEMamba(SMALL, pha_mode="residual")
    _, mag_c, pha, _ = spec(16000)
    with torch.no_grad():
        assert torch.equal(reg(mag_c, pha)[1], pha)
    opt = torch.optim.SGD(reg.parameters(), lr=0.1)
    loss = (reg(mag_c, pha)[1] - (pha + 0.5)).pow(2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        moved = (reg(mag_c, pha)[1] - pha).abs().mean().item()
    assert moved > 1e-3


def test_same_weights_every_rate_and_backward(models):
    reg, _ = models
    reg = USEMamba(SMALL)
    for fs in (8000, 44100):
        _, mag_c, pha, com = spec(fs, seconds=0.06)
        out = reg(mag_c, pha)
        loss = ((out[0] - mag_c) ** 2).mean() + ((out[2] - com) ** 2).mean()
        loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in reg.parameters())


def test_generator_is_identity_at_initialisation(models):
    reg, gen = models
    for fs in (8000, 22050, 48000):
        _, mag_c, pha, _ = spec(fs, seed=fs)
        with torch.no_grad():
            r = reg(mag_c, pha)
            g = gen(mag_c, pha, r[0], r[1])
        for a, b in zip(g, r):
            assert torch.equal(a, b)               # bit for bit, not just close


def test_generator_learns_away_from_identity():
    torch.manual_seed(0)
    gen = ResidualGenerator(SMALL)
    _, mag_c, pha, _ = spec(8000)
    reg_mag, reg_pha = mag_c * 0.5, pha
    opt = torch.optim.SGD(gen.parameters(), lr=0.1)
    for _ in range(2):
        out = gen(mag_c, pha, reg_mag, reg_pha)
        loss = ((out[0] - mag_c) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(gen(mag_c, pha, reg_mag, reg_pha)[0], reg_mag)
    # after one step the heads are non-zero, so gradients reach the whole network
    assert gen.net.dense_encoder.dense_conv_1[0].weight.grad.abs().sum() > 0


def test_two_stage_freezes_regression(models):
    reg, gen = models
    ts = TwoStage.from_models(reg, gen)
    ts.train()
    assert not ts.regression.training and ts.generator.training
    assert all(not p.requires_grad for p in ts.regression.parameters())
    assert count_parameters(ts, trainable_only=True) == count_parameters(gen)
    _, mag_c, pha, _ = spec(16000)
    with torch.no_grad():
        final, regression_out = ts.forward_both(mag_c, pha)
    assert torch.equal(final[0], regression_out[0])       # untrained generator: identity


def test_config_validation():
    with pytest.raises(ValueError, match="unknown key"):
        USEMamba({"num_blockz": 3})
    with pytest.raises(ValueError, match="mag_mode"):
        USEMambaConfig(mag_mode="mask")
    with pytest.raises(ValueError, match="pha_mode"):
        USEMambaConfig(pha_mode="mask")
    assert USEMamba(SMALL, num_blocks=2).config.num_blocks == 2


def test_paper_parameter_count_is_the_release_count():
    assert count_parameters(USEMamba(PAPER_REGRESSION)) == 9_607_747


def test_residual_magnitude_starts_at_the_noisy_magnitude():
    torch.manual_seed(2)
    reg = USEMamba(SMALL, mag_mode="residual")
    _, mag_c, pha, _ = spec(8000)
    with torch.no_grad():
        assert torch.equal(reg(mag_c, pha)[0], mag_c)
        mapped = USEMamba(SMALL)(mag_c, pha)[0]
    assert not torch.equal(mapped, mag_c)
