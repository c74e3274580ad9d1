"""The adaptive multi-band discriminator: band counts per rate, inputs, spectral norm, features."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from use_repro.audio.stft import RATES, mag_pha_stft
from use_repro.models.discriminator import MultiBandDiscriminator

BANDS = {8000: 1, 16000: 2, 22050: 3, 24000: 3, 32000: 4, 44100: 6, 48000: 6}


@pytest.fixture(scope="module")
def disc():
    torch.manual_seed(0)
    # eval: spectral norm's power iteration (which updates the weights' scale) runs only in train
    return MultiBandDiscriminator(channels=4).eval()


@pytest.mark.parametrize("fs", RATES)
def test_bands_and_outputs_at_every_rate(disc, fs):
    assert len(disc.bands_for(fs)) == BANDS[fs]
    x = 0.1 * torch.randn(2, int(0.1 * fs))
    score, feats = disc(x, fs)
    assert score.shape == (2,)
    assert len(feats) == 5 * BANDS[fs] + 2            # 5 layers per band + 2 post layers
    assert feats[-1].shape[:2] == (2, 1)              # the pre-pooling score map
    torch.testing.assert_close(score, feats[-1].mean(dim=(1, 2, 3)))
    # the same through the compressed complex spectrum (a model's `com` output)
    score_c, _ = disc(mag_pha_stft(x, fs)[2], fs)
    torch.testing.assert_close(score, score_c, atol=1e-5, rtol=1e-5)


def test_band_edges_22k(disc):
    assert disc.bands_for(22050) == [(0, 160), (160, 320), (320, 442)]   # 0-4, 4-8, 8-11.025 kHz


def test_band_k_shares_weights_across_rates(disc):
    # band 0 (0-4 kHz) is processed by the same stack whatever the rate: a 16 kHz signal's
    # first-band features equal those of the same spectrum band fed at 8 kHz
    x = 0.1 * torch.randn(1, 1600)
    com16 = mag_pha_stft(x, 16000)[2]
    _, f16 = disc(com16, 16000)
    feats = []
    disc.bands[0](disc.spectrogram(com16, 16000)[..., 0:160], feats)
    torch.testing.assert_close(f16[0], feats[0])


def test_spectral_norm_everywhere(disc):
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 * 6 + 2
    assert all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in convs)
    # after power iterations each conv's largest singular value is ~1 (Lipschitz)
    disc.train()
    x = 0.1 * torch.randn(1, 800)
    for _ in range(30):
        disc(x, 8000)
    disc.eval()
    w = disc.post[0].weight.reshape(disc.post[0].weight.shape[0], -1)
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_rate_above_max_is_an_error():
    d = MultiBandDiscriminator(channels=2, max_rate=16000)
    with pytest.raises(ValueError, match="bands"):
        d(torch.randn(1, 4800), 48000)


def test_wrong_spectrum_size_is_an_error(disc):
    com = mag_pha_stft(torch.randn(1, 800), 8000)[2]
    with pytest.raises(ValueError, match="bins"):
        disc(com, 16000)


def test_gradients_reach_generator_output(disc):
    com = mag_pha_stft(torch.randn(1, 1600), 16000)[2].requires_grad_(True)
    score, _ = disc(com, 16000)
    score.sum().backward()
    assert com.grad is not None and com.grad.abs().sum() > 0
