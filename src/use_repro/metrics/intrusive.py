"""Intrusive SE metrics as URGENT 2025 computes them: PESQ, ESTOI, SDR, LSD, MCD.

Every function takes the reference and the estimate as float arrays [T] of equal length at the
same sampling rate `fs`, and returns a float. Inputs are first rounded to float32 (the challenge
reads its files with `soundfile.read(dtype="float32")`), so a float64 caller gets the same value
as one passing the file's samples. The challenge's choices, reproduced here:

- PESQ: narrow band at 8 kHz, wide band at 16 kHz; above 16 kHz both signals are resampled to
  16 kHz with soxr (its default "HQ" quality) and scored wide band; other rates are an error.
  "No utterance detected" gives NaN.
- ESTOI: pystoi's extended STOI at the native rate (pystoi resamples to 10 kHz itself), with
  NumPy's global seed set to 0 first, as the challenge does, so the score is deterministic.
  Computed by `use_repro.metrics.estoi`: pystoi's operations on the same arrays without its
  Python loops, the same double as pystoi's (tests/metrics/test_estoi.py); 1.1-1.7x less CPU
  than pystoi on one BLAS thread, 2-3x where OpenBLAS may spin a second thread for pystoi's
  small matmul (ours keeps it to one).
- SDR: `fast_bss_eval.bss_eval_sources` without permutation and with `clamp_db=50`, computed in
  float64 on one torch thread. The challenge's own call runs in float32, whose round-off moves
  the value by up to ~0.05 dB and makes it depend on the thread count (0.3 dB seen with two
  threads). In float64 the challenge's NumPy path and this torch path (the same FFT-based
  algorithm) were measured 6.5e-10 dB apart (issue 14); an independent float64 reference with
  direct correlation sums agrees to ~1e-6 dB (the Toeplitz system is ill-conditioned).
- LSD: the estimate is first scaled by the least-squares factor <ref, est> / (<est, est> + eps)
  (in float32, as the challenge's arrays are); magnitude STFTs with a 32 ms Hann window and 16 ms
  hop at the native rate (centred, zero padded, as librosa.stft), taken in float64 as librosa
  does (float64 window times the frames, float64 FFT); per frame the root mean square over
  frequency of log(|R|^2 / (|E| + eps)^2 + eps), averaged over frames; eps = 1e-8.
- MCD: the same scale alignment; SPTK mel-cepstra (pysptk.mcep, etype 1, eps 1e-6; computed
  by the same iteration on all frames at once, `mcd._mcep_frames`, equal to pysptk's to
  ~1e-14) of 1024-sample Hamming frames with a 256-sample shift, unpadded, at the native rate, with the
  order / all-pass constant of the challenge's `_get_best_mcep_params` (mcd.MCEP_PARAMS); frames
  are aligned with fastdtw (Euclidean, radius 1, the reference as the first sequence) and the
  distortion 10/ln(10) * sqrt(2 * sum diff^2) is averaged along the path. The DTW is our
  NumPy implementation of the pure-Python fastdtw the challenge runs (`mcd.fastdtw_path`: the same
  path, faster); fastdtw's compiled extension is not used (its tie rule differs: see there).
  Computed by `use_repro.metrics.mcd` (as ESTOI by `estoi`): this module keeps the challenge's
  input rounding and scale alignment, that one the mel-cepstra and the DTW.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from use_repro.audio.resample import resample
from use_repro.metrics.mcd import mcd

PESQ_RATES = {8000: "nb", 16000: "wb"}
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
    """Extended STOI at the native rate: pystoi's `stoi(ref, est, fs, extended=True)` after
    `np.random.seed(0)`, as the challenge calls it (the same double), computed by
    `use_repro.metrics.estoi` (its noise from a private generator seeded 0: NumPy's global
    random state is left alone)."""
    from use_repro.metrics.estoi import estoi

    ref, est = _pair(ref, est)
    return estoi(ref, est, fs, seed=0)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch intra-op thread, restoring the previous count after.

    A multi-threaded reduction sums in an order that depends on the thread count; one thread
    makes the result a function of the inputs alone.
    """
    import torch

    old = torch.get_num_threads()
    if old != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if old != 1:
            torch.set_num_threads(old)


def sdr_score(ref: np.ndarray, est: np.ndarray) -> float:
    """BSS-eval SDR in dB of `est` [T] against `ref` [T] from fast_bss_eval (no permutation,
    clamped at 50 dB), in float64 on one thread."""
    import fast_bss_eval
    import torch

    ref, est = _pair(ref, est)
    # fast_bss_eval's NumPy path breaks on NumPy 2 (np.linalg.solve's new broadcasting rule);
    # its torch path is the same algorithm. float64: see the module doc.
    r = torch.from_numpy(ref.astype(np.float64)[None])
    e = torch.from_numpy(est.astype(np.float64)[None])
    with one_torch_thread():
        sdr, _, _ = fast_bss_eval.bss_eval_sources(r, e, compute_permutation=False, clamp_db=SDR_CLAMP_DB)
    return float(sdr.mean())


def scale_to(ref: np.ndarray, est: np.ndarray, eps: float = EPS) -> np.ndarray:
    """`est` times the least-squares gain that best matches `ref` (the alignment before LSD/MCD)."""
    return est * (np.sum(ref * est) / (np.sum(est ** 2) + eps))


def stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| [frames, n_fft//2+1] (float64) of `x` [T] with a periodic Hann window, centred and
    zero padded: librosa.stft's defaults and its float64 arithmetic, without needing librosa."""
    from scipy.signal import get_window

    pad = n_fft // 2
    xp = np.pad(np.asarray(x, dtype=np.float64), (pad, pad), mode="constant")
    n_frames = 1 + (len(xp) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    win = get_window("hann", n_fft, fftbins=True)  # float64, as librosa's
    return np.abs(np.fft.rfft(xp[idx] * win, axis=1))


def lsd_score(ref: np.ndarray, est: np.ndarray, fs: int, eps: float = EPS) -> float:
    """Log-spectral distance of `est` [T] against `ref` [T] after least-squares scale alignment
    (lower is better); spectra and log in float64."""
    ref, est = _pair(ref, est)
    est = scale_to(ref, est, eps)
    n_fft, hop = int(fs * LSD_WIN_S), int(fs * LSD_HOP_S)
    r, e = stft_mag(ref, n_fft, hop), stft_mag(est, n_fft, hop)
    d = np.log(r ** 2 / ((e + eps) ** 2) + eps) ** 2
    return float(np.mean(np.sqrt(np.mean(d, axis=1))))


def mcd_score(ref: np.ndarray, est: np.ndarray, fs: int, eps: float = EPS, dtw: str = "numpy",
              mcep: str = "numpy") -> float:
    """Mel-cepstral distortion in dB of `est` [T] against `ref` [T] after scale alignment and
    fastdtw alignment (lower is better), computed by `use_repro.metrics.mcd`. `dtw`: see
    `mcd.dtw_path`'s `backend`; `mcep`: see `mcd.mel_cepstrum`'s (both "numpy" by default;
    "fastdtw" / "sptk" run the challenge's packages literally)."""
    ref, est = _pair(ref, est)
    est = scale_to(ref, est, eps)
    return mcd(ref, est, fs, dtw, mcep)
