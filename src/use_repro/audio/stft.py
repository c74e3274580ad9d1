"""Sampling-frequency-independent (SFI) STFT, as the paper's Section 3.2 describes it.

Every rate gets the same *durations*, not the same sample counts: a 40 ms periodic Hann window
and FFT (320 points at 8 kHz, scaled with the rate) and a hop of one eighth of the window
(40 points, 5 ms, at 8 kHz). Because 320 points at 8 kHz is 25 Hz per bin, every rate that is a
multiple of 25 Hz has an integer number of bins, all 25 Hz apart, so a given frequency always
lands on the same bin index: the property the adaptive multi-band discriminator relies on.

| fs (Hz) | n_fft = win | hop | bins F | hop (ms) |
|---|---|---|---|---|
| 8000  | 320  | 40  | 161 | 5.0 |
| 16000 | 640  | 80  | 321 | 5.0 |
| 22050 | 882  | 110 | 442 | 4.99 |
| 24000 | 960  | 120 | 481 | 5.0 |
| 32000 | 1280 | 160 | 641 | 5.0 |
| 44100 | 1764 | 220 | 883 | 4.99 |
| 48000 | 1920 | 240 | 961 | 5.0 |

At 22.05 and 44.1 kHz an eighth of the window is not an integer (110.25, 220.5 points); the hop
is rounded down, as the authors' RE-USE inference code does (`n_fft // 8`), so those two rates
have 0.2 % more frames per second. The window is always exactly 40 ms.

Frames are centred (the signal is reflect-padded by n_fft / 2 on each side, `torch.stft`'s
`center=True`), so a signal of T samples has ``1 + T // hop`` frames.

Magnitudes are compressed with ``log1p`` (the RE-USE release); the model sees and predicts the
compressed magnitude ``mag_c = log1p(|X|)`` and the phase separately. ``com`` is the compressed
complex spectrum ``mag_c * exp(j * pha)`` stored as a trailing real/imaginary axis (the
"complex" representation of MP-SENet/SEMamba, used by the complex and consistency losses).

Shapes: waveforms ``[B, T]``; spectra ``[B, F, N]`` (F bins, N frames); ``com`` ``[B, F, N, 2]``.
"""
from __future__ import annotations

from functools import lru_cache

import torch

# 320 points at 8 kHz: the window (and FFT) length in seconds, and the hop as a fraction of it.
WINDOW_SECONDS = 320 / 8000  # 40 ms
HOP_DIVISOR = 8              # hop = n_fft // 8 (5 ms)
BIN_HZ = 1 / WINDOW_SECONDS  # 25 Hz per frequency bin at every rate
RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)

# Keeps X / |X| finite where |X| == 0 (there log1p(|X|) == 0 too, so the product stays 0).
_TINY = 1e-12


class STFTError(ValueError):
    """A sampling rate the SFI STFT cannot represent with integer sizes."""


def stft_config(fs: int) -> tuple[int, int, int]:
    """``(n_fft, hop, win_length)`` for sampling rate ``fs`` (Hz).

    n_fft = win_length = 40 ms of samples (320 at 8 kHz); hop = n_fft // 8.
    Raises STFTError if 40 ms is not an integer number of samples (fs not a multiple of 25 Hz).
    """
    fs_i = int(fs)
    if fs_i != fs or fs_i <= 0:
        raise STFTError(f"sampling rate {fs!r}: must be a positive integer number of Hz")
    n_fft = fs_i * 320
    if n_fft % 8000:
        raise STFTError(f"sampling rate {fs_i} Hz: a 40 ms window is {n_fft / 8000} samples, "
                        f"not an integer (the rate must be a multiple of 25 Hz)")
    n_fft //= 8000
    return n_fft, n_fft // HOP_DIVISOR, n_fft


def num_bins(fs: int) -> int:
    """Frequency bins F = n_fft // 2 + 1 at rate ``fs`` (161 at 8 kHz, 961 at 48 kHz)."""
    return stft_config(fs)[0] // 2 + 1


def num_frames(length: int, fs: int) -> int:
    """Frames N of a ``length``-sample signal at rate ``fs`` (centred frames: 1 + T // hop)."""
    return 1 + int(length) // stft_config(fs)[1]


@lru_cache(maxsize=64)
def _window_cpu(win_length: int, dtype: torch.dtype) -> torch.Tensor:
    # Made as a normal tensor even when the first caller runs under torch.inference_mode
    # (enhancement): a cached inference tensor could not be used by a later training step.
    with torch.inference_mode(False):
        return torch.hann_window(win_length, periodic=True, dtype=dtype)


def _window(win_length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return _window_cpu(win_length, dtype).to(device)


def compress(mag: torch.Tensor) -> torch.Tensor:
    """Magnitude -> compressed magnitude, ``log1p(mag)``."""
    return torch.log1p(mag)


def decompress(mag_c: torch.Tensor) -> torch.Tensor:
    """Compressed magnitude -> magnitude, ``expm1(max(mag_c, 0))``.

    Negative values (a model's output may dip below zero) are clamped to 0 first, so the result
    is always a valid, non-negative magnitude.
    """
    return torch.expm1(torch.clamp(mag_c, min=0.0))


def stft(wav: torch.Tensor, fs: int) -> torch.Tensor:
    """Complex SFI STFT. ``wav`` ``[B, T]`` (or ``[T]``) -> ``[B, F, N]`` complex.

    Reflect padding needs T > n_fft / 2; shorter signals are zero-padded instead.
    """
    n_fft, hop, win = stft_config(fs)
    squeeze = wav.dim() == 1
    x = wav.unsqueeze(0) if squeeze else wav
    if x.dim() != 2:
        raise ValueError(f"stft: expected a waveform [B, T] or [T], got shape {tuple(wav.shape)}")
    if not x.is_floating_point():
        x = x.float()
    pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win,
                      window=_window(win, x.device, x.dtype), center=True, pad_mode=pad_mode,
                      normalized=False, onesided=True, return_complex=True)
    return spec[0] if squeeze else spec


def istft(spec: torch.Tensor, fs: int, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: complex ``[B, F, N]`` -> waveform ``[B, length]``."""
    n_fft, hop, win = stft_config(fs)
    real_dtype = spec.real.dtype
    return torch.istft(spec, n_fft, hop_length=hop, win_length=win,
                       window=_window(win, spec.device, real_dtype), center=True,
                       normalized=False, onesided=True, length=length)


def mag_pha_stft(wav: torch.Tensor, fs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Waveform ``[B, T]`` -> ``(mag_c [B, F, N], pha [B, F, N], com [B, F, N, 2])``.

    ``mag_c = log1p(|X|)``; ``pha = angle(X)`` in (-pi, pi]; ``com = mag_c * (cos pha, sin pha)``.

    Differentiable with respect to ``wav`` without NaNs, also at bins where X == 0 (``com`` is
    computed as ``mag_c * X / |X|`` with a guarded denominator, which equals 0 there). ``pha`` is
    meant as an input or a target: its gradient at exactly-zero bins is undefined.
    """
    spec = stft(wav, fs)
    mag = spec.abs()
    mag_c = compress(mag)
    pha = torch.angle(spec)
    unit = spec / torch.clamp(mag, min=_TINY)
    com = torch.stack((mag_c * unit.real, mag_c * unit.imag), dim=-1)
    return mag_c, pha, com


def mag_pha_to_com(mag_c: torch.Tensor, pha: torch.Tensor) -> torch.Tensor:
    """``(mag_c, pha) [B, F, N]`` -> ``com [B, F, N, 2]`` = mag_c * (cos pha, sin pha)."""
    return torch.stack((mag_c * torch.cos(pha), mag_c * torch.sin(pha)), dim=-1)


def mag_pha_istft(mag_c: torch.Tensor, pha: torch.Tensor, fs: int,
                  length: int | None = None) -> torch.Tensor:
    """``(mag_c, pha) [B, F, N]`` -> waveform ``[B, length]`` (inverse of :func:`mag_pha_stft`).

    ``length`` (samples) trims or pads the output to the original signal's length; without it the
    output has ``(N - 1) * hop`` samples.
    """
    mag = decompress(mag_c)
    spec = torch.polar(mag, pha) if mag.dtype == pha.dtype else torch.polar(mag, pha.to(mag.dtype))
    return istft(spec, fs, length)


def band_bins(fs: int, band_hz: float = 4000.0) -> list[tuple[int, int]]:
    """Bin ranges ``[(start, stop), ...]`` of consecutive ``band_hz`` bands up to Nyquist.

    The last band ends at Nyquist and includes the Nyquist bin (8 kHz -> one band of 161 bins;
    22.05 kHz -> 0-4, 4-8 and 8-11.025 kHz: bins [0, 160), [160, 320), [320, 442)).
    """
    n_bins = num_bins(fs)
    per_band = int(round(band_hz / BIN_HZ))
    nyquist = fs / 2
    n_bands = max(1, int(-(-nyquist // band_hz)))  # ceil
    edges = [min(b * per_band, n_bins) for b in range(n_bands)] + [n_bins]
    return [(edges[i], edges[i + 1]) for i in range(n_bands) if edges[i + 1] > edges[i]]
