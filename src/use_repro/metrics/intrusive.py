"""Intrusive SE metrics as URGENT 2025 computes them: PESQ, ESTOI, SDR, LSD, MCD.

Every function takes the reference and the estimate as float arrays [T] of equal length at the
same sampling rate `fs`, and returns a float. The challenge's choices, reproduced here:

- PESQ: narrow band at 8 kHz, wide band at 16 kHz; above 16 kHz both signals are resampled to
  16 kHz with soxr (its default "HQ" quality) and scored wide band; other rates are an error.
  "No utterance detected" gives NaN.
- ESTOI: pystoi's extended STOI at the native rate (pystoi resamples to 10 kHz itself), with
  NumPy's global seed set to 0 first, as the challenge does, so the score is deterministic.
- SDR: `fast_bss_eval.bss_eval_sources` without permutation and with `clamp_db=50`.
- LSD: the estimate is first scaled by the least-squares factor <ref, est> / (<est, est> + eps);
  magnitude STFTs with a 32 ms Hann window and 16 ms hop at the native rate (centred, zero
  padded, as librosa.stft); per frame the root mean square over frequency of
  log(|R|^2 / (|E| + eps)^2 + eps), averaged over frames; eps = 1e-8.
- MCD: the same scale alignment; SPTK mel-cepstra (pysptk.mcep, etype 1, eps 1e-6) of
  1024-sample Hamming frames with a 256-sample shift, unpadded, at the native rate, with the
  order / all-pass constant chosen per rate (13/0.41 at 8 kHz ... 39/0.55 at 48 kHz); frames are
  aligned with fastdtw (Euclidean) and the distortion 10/ln(10) * sqrt(2 * sum diff^2) is
  averaged along the path.
"""
from __future__ import annotations

import numpy as np

from use_repro.audio.resample import resample
from use_repro.metrics._compat import import_pysptk

PESQ_RATES = {8000: "nb", 16000: "wb"}
# (mel-cepstral order, all-pass constant) per sampling rate, as the challenge's mcd_utils.
MCEP_PARAMS = {8000: (13, 0.41), 16000: (23, 0.42), 22050: (34, 0.45), 24000: (34, 0.46),
               32000: (36, 0.49), 44100: (39, 0.53), 48000: (39, 0.55)}
MCD_FFT, MCD_SHIFT = 1024, 256
LSD_WIN_S, LSD_HOP_S = 0.032, 0.016
SDR_CLAMP_DB = 50.0
EPS = 1e-8


def _pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float32)
    est = np.asarray(est, dtype=np.float32)
    if ref.ndim != 1 or ref.shape != est.shape:
        raise ValueError(f"reference {ref.shape} and estimate {est.shape} must be 1-D and of equal length")
    return ref, est


def pesq_score(ref: np.ndarray, est: np.ndarray, fs: int) -> float:
    """PESQ of `est` [T] against `ref` [T]: nb at 8 kHz, wb at 16 kHz (and above, after soxr to 16 kHz)."""
    from pesq import PesqError, pesq

    ref, est = _pair(ref, est)
    if fs > 16000:
        ref, est, fs = resample(ref, fs, 16000, quality="HQ"), resample(est, fs, 16000, quality="HQ"), 16000
    if fs not in PESQ_RATES:
        raise ValueError(f"PESQ needs 8000 Hz or at least 16000 Hz, got {fs}")
    value = pesq(fs, ref, est, mode=PESQ_RATES[fs], on_error=PesqError.RETURN_VALUES)
    if value == PesqError.NO_UTTERANCES_DETECTED:
        return float("nan")
    return float(value)


def estoi_score(ref: np.ndarray, est: np.ndarray, fs: int) -> float:
    """Extended STOI (pystoi) at the native rate, NumPy's global seed set to 0 first."""
    from pystoi import stoi

    ref, est = _pair(ref, est)
    np.random.seed(0)  # the challenge seeds here, so do we: identical numbers, not just close
    return float(stoi(ref, est, fs, extended=True))


def sdr_score(ref: np.ndarray, est: np.ndarray) -> float:
    """BSS-eval SDR in dB from fast_bss_eval (no permutation, clamped at 50 dB)."""
    import fast_bss_eval
    import torch

    ref, est = _pair(ref, est)
    # fast_bss_eval's NumPy path breaks on NumPy 2 (np.linalg.solve's new broadcasting rule);
    # its torch path is the same algorithm, run here in the challenge's float32.
    sdr, _, _ = fast_bss_eval.bss_eval_sources(torch.from_numpy(ref[None]), torch.from_numpy(est[None]),
                                               compute_permutation=False, clamp_db=SDR_CLAMP_DB)
    return float(sdr.mean())


def scale_to(ref: np.ndarray, est: np.ndarray, eps: float = EPS) -> np.ndarray:
    """`est` times the least-squares gain that best matches `ref` (the alignment before LSD/MCD)."""
    return est * (np.sum(ref * est) / (np.sum(est ** 2) + eps))


def stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| [frames, n_fft//2+1] with a periodic Hann window, centred and zero padded
    (numerically librosa.stft's defaults, without needing librosa)."""
    from scipy.signal import get_window

    pad = n_fft // 2
    xp = np.pad(x, (pad, pad), mode="constant")
    n_frames = 1 + (len(xp) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    win = get_window("hann", n_fft, fftbins=True).astype(np.float32)
    return np.abs(np.fft.rfft(xp[idx] * win, axis=1))


def lsd_score(ref: np.ndarray, est: np.ndarray, fs: int, eps: float = EPS) -> float:
    """Log-spectral distance after least-squares scale alignment (lower is better)."""
    ref, est = _pair(ref, est)
    est = scale_to(ref, est, eps)
    n_fft, hop = int(fs * LSD_WIN_S), int(fs * LSD_HOP_S)
    r, e = stft_mag(ref, n_fft, hop), stft_mag(est, n_fft, hop)
    d = np.log(r ** 2 / ((e + eps) ** 2) + eps) ** 2
    return float(np.mean(np.sqrt(np.mean(d, axis=1))))


def mel_cepstrum(x: np.ndarray, fs: int) -> np.ndarray:
    """SPTK mel-cepstra [frames, order+1] of unpadded 1024-sample Hamming frames, 256 apart."""
    pysptk = import_pysptk()
    if fs not in MCEP_PARAMS:
        raise ValueError(f"MCD has no mel-cepstral setting for {fs} Hz (supported: {sorted(MCEP_PARAMS)})")
    order, alpha = MCEP_PARAMS[fs]
    n_frames = (len(x) - MCD_FFT) // MCD_SHIFT + 1
    if n_frames < 1:
        raise ValueError(f"MCD needs at least {MCD_FFT} samples, got {len(x)}")
    win = pysptk.sptk.hamming(MCD_FFT)
    x = np.asarray(x, dtype=np.float64)
    return np.stack([pysptk.mcep(x[i * MCD_SHIFT:i * MCD_SHIFT + MCD_FFT] * win, order, alpha,
                                 eps=1e-6, etype=1) for i in range(n_frames)])


def mcd_score(ref: np.ndarray, est: np.ndarray, fs: int, eps: float = EPS) -> float:
    """Mel-cepstral distortion in dB after scale alignment and fastdtw alignment (lower is better)."""
    from fastdtw import fastdtw
    from scipy.spatial.distance import euclidean

    ref, est = _pair(ref, est)
    est = scale_to(ref, est, eps)
    # The challenge passes the reference as its first DTW sequence; fastdtw is only
    # approximately symmetric, so keep the order.
    a, b = mel_cepstrum(ref, fs), mel_cepstrum(est, fs)
    _, path = fastdtw(a, b, dist=euclidean)
    ia, ib = np.asarray(path).T
    diff2 = np.sum((a[ia] - b[ib]) ** 2, axis=1)
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * diff2)))
