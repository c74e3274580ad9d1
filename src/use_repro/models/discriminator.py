"""Adaptive multi-band discriminator (the paper's Section 3.2; the idea of DAC's multi-band one).

The input's spectrogram (SFI STFT, log1p-compressed complex spectrum, 2 channels: real and
imaginary) is cut into 4 kHz bands up to the input's Nyquist frequency. With the SFI STFT every
bin is 25 Hz wide at every rate, so a band is always 160 bins and band ``k`` always covers the same
frequencies: 8 kHz input -> one band (0-4 kHz); 22.05 kHz -> 0-4, 4-8, 8-11.025 kHz; 48 kHz -> six
bands. The last band ends at Nyquist (and may be narrower). Band ``k`` has its own 5-layer 2-D
convolution stack (weights shared by every rate that has a band ``k``), the band features are
concatenated along frequency, and a 2-layer 2-D convolution and global average pooling give the
score. Spectral normalisation on every convolution keeps each layer 1-Lipschitz (the argument of
the paper's Eq. 3).

Layout inside: ``[B, C, N, F]`` (time N, frequency F). Band stack: conv (3x9) -> 3 x conv (3x9,
stride 2 along frequency) -> conv (3x3); post: conv (3x3) -> conv (3x3) to one channel.
LeakyReLU(0.1) after every layer except the last.

forward(x, fs): ``x`` is a waveform ``[B, T]`` or a compressed complex spectrum
``[B, F, N, 2]`` (``com`` of :func:`use_repro.audio.stft.mag_pha_stft` or of a model's output)
at rate ``fs``. Returns ``(score [B], features)``: ``features`` is the list of every
intermediate map (band layers in band order, then the post layers, the last one being the
pre-pooling score map ``[B, 1, N, F']``), for the feature-matching loss.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from use_repro.audio.stft import band_bins, mag_pha_stft, num_bins

LRELU_SLOPE = 0.1


def _sn_conv(cin: int, cout: int, kernel, stride=(1, 1)) -> nn.Module:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding))


class BandStack(nn.Module):
    """Five spectrally normalised 2-D convolutions for one band: ``[B, 2, N, Fb]`` -> ``[B, C, N, ~Fb/8]``."""

    def __init__(self, channels: int, in_channels: int = 2):
        super().__init__()
        self.layers = nn.ModuleList([
            _sn_conv(in_channels, channels, (3, 9)),
            _sn_conv(channels, channels, (3, 9), stride=(1, 2)),
            _sn_conv(channels, channels, (3, 9), stride=(1, 2)),
            _sn_conv(channels, channels, (3, 9), stride=(1, 2)),
            _sn_conv(channels, channels, (3, 3)),
        ])

    def forward(self, x: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        for layer in self.layers:
            x = F.leaky_relu(layer(x), LRELU_SLOPE)
            features.append(x)
        return x


class MultiBandDiscriminator(nn.Module):
    """Adaptive multi-band discriminator (see the module docstring).

    Args: ``channels`` per conv layer (32); ``band_hz`` band width (4000); ``max_rate`` the highest
    sampling rate to support (48000 -> 6 band stacks).
    """

    def __init__(self, channels: int = 32, band_hz: float = 4000.0, max_rate: int = 48000):
        super().__init__()
        self.channels, self.band_hz, self.max_rate = int(channels), float(band_hz), int(max_rate)
        self.init_args = {"channels": self.channels, "band_hz": self.band_hz, "max_rate": self.max_rate}
        self.max_bands = max(1, math.ceil(max_rate / 2 / band_hz))
        self.bands = nn.ModuleList(BandStack(self.channels) for _ in range(self.max_bands))
        self.post = nn.ModuleList([
            _sn_conv(self.channels, self.channels, (3, 3)),
            _sn_conv(self.channels, 1, (3, 3)),
        ])

    def bands_for(self, fs: int) -> list[tuple[int, int]]:
        """Bin ranges of the bands used at rate ``fs`` (see :func:`use_repro.audio.stft.band_bins`)."""
        bands = band_bins(fs, self.band_hz)
        if len(bands) > self.max_bands:
            raise ValueError(f"MultiBandDiscriminator: {fs} Hz needs {len(bands)} bands of "
                             f"{self.band_hz:g} Hz but the model has {self.max_bands} "
                             f"(max_rate={self.max_rate})")
        return bands

    def spectrogram(self, x: torch.Tensor, fs: int) -> torch.Tensor:
        """Waveform ``[B, T]`` or ``com [B, F, N, 2]`` -> discriminator input ``[B, 2, N, F]``."""
        if x.dim() == 2:
            x = mag_pha_stft(x, fs)[2]
        if x.dim() != 4 or x.shape[-1] != 2:
            raise ValueError(f"MultiBandDiscriminator: expected a waveform [B, T] or a complex "
                             f"spectrum [B, F, N, 2], got {tuple(x.shape)}")
        if x.shape[1] != num_bins(fs):
            raise ValueError(f"MultiBandDiscriminator: spectrum has {x.shape[1]} bins but {fs} Hz "
                             f"has {num_bins(fs)}")
        return x.permute(0, 3, 2, 1)

    def forward(self, x: torch.Tensor, fs: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = self.spectrogram(x, fs)
        features: list[torch.Tensor] = []
        outs = [stack(spec[..., lo:hi], features)
                for stack, (lo, hi) in zip(self.bands, self.bands_for(fs))]
        y = torch.cat(outs, dim=-1)                       # band features along frequency
        y = F.leaky_relu(self.post[0](y), LRELU_SLOPE)
        features.append(y)
        y = self.post[1](y)
        features.append(y)
        return y.mean(dim=(1, 2, 3)), features
