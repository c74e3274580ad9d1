"""Gusty, low-frequency wind noise following the single-channel (SC) wind-noise model that the
URGENT 2025 challenge used (Mirabilii, Lodermeyer, Czwielong, Becker, Habets, "Simulating wind
noise with airflow speed-dependent characteristics", IWAENC 2022).

The model, written here from its description and published regression constants:

1. A wind-speed profile: `gustiness` speed points drawn from a Weibull distribution (shape 2,
   scale 2 m/s), interpolated to the signal length, plus smoothed random fluctuations (100 ms
   Hann average). More points give gustier wind.
2. An excitation: white Gaussian noise whose gain follows the profile in two ways, a long-term
   variance from a linear speed-to-level regression (8.0 dB per m/s) and a short-term variance from
   a GARCH(1,1) process whose parameters are polynomials in the speed (overlap-added in 128-sample
   Hann frames).
3. A turbulence spectrum: the excitation is filtered, frame by frame (2048-sample Hann frames,
   50 % overlap), by an all-pole filter of order 5 whose line-spectral frequencies are cubic-to-
   quartic polynomials in the local speed, which concentrates the energy at low frequencies.

The model's constants describe 48 kHz signals, so the noise is always generated at 48 kHz and
resampled (soxr) to the requested rate; its spectrum in Hz is then the same at every rate.
"""
from __future__ import annotations

import numpy as np

from use_repro.audio.resample import resample

MODEL_FS = 48000

# long-term noise level (dB) vs speed (m/s)
_LT_REGRESSION = (8.00071114414022, -220.332082908370)
# GARCH(1,1) parameters vs speed (polynomial coefficients, highest power first)
_GARCH_ALPHA = (-2.73244444508231e-05, 0.00141129711949206, -0.0274652794467908, 0.257613241095714,
                -0.139824587447063)
_GARCH_BETA = (-9.75160902595897e-05, 0.00464300106846736, -0.0871968755558256, 0.651013973757802)
_GARCH_OMEGA = (9.69585296574741e-05, -0.00231853830578967, 0.0124681159197788)
# line-spectral frequencies (rad) vs speed: row = power (4..0), column = LSF index
_LSF_REGRESSION = np.array([
    [-2.63412497797108e-06, 5.93162248595821e-05, 0.000215613938043173, -0.000149723789407121, -0.000213703084399375],
    [9.50240139044154e-05, -0.00271741166649528, -0.0103783584000284, 0.00483963669507075, 0.00931864887930701],
    [-0.000699199223507821, 0.0428714179385289, 0.177250839818556, -0.0329542145779793, -0.129910107562929],
    [0.0106849674771013, -0.234688122194936, -1.21337646113093, -0.168053225019258, 0.568371362156217],
    [-0.000966851130291645, 0.541693139684727, 3.24796925730457, 2.54984352038733, 1.86097523205089],
])


def lsf_to_lpc(lsf: np.ndarray) -> np.ndarray:
    """All-pole polynomial A(z) = [1, a1, ..., ap] from p line-spectral frequencies (radians).

    A(z) = (P(z) + Q(z)) / 2, with the symmetric and antisymmetric polynomials built from the
    alternating LSFs and the fixed roots at z = +1 / -1.
    """
    w = np.sort(np.asarray(lsf, np.float64))
    p = len(w)
    zq = np.exp(1j * w[0::2])
    zp = np.exp(1j * w[1::2])
    q = np.real(np.poly(np.concatenate([zq, zq.conj()])))
    pp = np.real(np.poly(np.concatenate([zp, zp.conj()])))
    if p % 2:
        pp = np.convolve(pp, [1.0, 0.0, -1.0])
    else:
        pp = np.convolve(pp, [1.0, -1.0])
        q = np.convolve(q, [1.0, 1.0])
    return (0.5 * (pp + q))[:-1]


def speed_profile(n: int, rng: np.random.Generator, gustiness: float, fs: int = MODEL_FS) -> np.ndarray:
    """Wind speed (m/s) per sample [n]."""
    from scipy import signal  # here, not at import: `use-repro corpus --help` stays quick

    points = max(1, int(gustiness))
    coarse = 2.0 * rng.weibull(2.0, points)
    prof = signal.resample(coarse, n) if points > 1 else np.full(n, coarse[0])
    win = np.hanning(int(fs * 0.1))
    win /= win.sum()
    fluct = signal.fftconvolve(10 * rng.standard_normal(n), win)[:n]
    return prof + fluct


def _frame_speed(profile: np.ndarray, win: int, hop: int) -> np.ndarray:
    padded = np.concatenate([np.full(win, 2.0), profile, np.full(win, 2.0)])
    frames = (len(padded) - win) // hop + 1
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    starts = np.arange(frames) * hop
    return np.clip((csum[starts + win] - csum[starts]) / win, 2.0, 18.0)


def _garch(speeds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha = np.polyval(_GARCH_ALPHA, speeds)
    beta = np.polyval(_GARCH_BETA, speeds)
    omega = np.polyval(_GARCH_OMEGA, speeds)
    beta = np.where(alpha + beta > 1, 0.0, beta)
    z = rng.standard_normal(len(speeds))
    st = np.zeros(len(speeds))
    cv_prev, st_prev = 0.0, 0.0
    for i in range(len(speeds)):
        cv = omega[i] + alpha[i] * st_prev**2 + beta[i] * cv_prev
        st_prev = np.sqrt(abs(cv)) * z[i]
        cv_prev = cv
        st[i] = st_prev
    return st / (np.max(np.abs(st)) + 1e-12)


def wind_noise(seconds: float, fs: int, rng: np.random.Generator, gustiness: float) -> tuple[np.ndarray, float]:
    """Wind noise [round(seconds * fs)] float32 at `fs` (peak 0.95) and its mean wind speed (m/s)."""
    from scipy import signal  # here, not at import: `use-repro corpus --help` stays quick

    n = int(round(seconds * MODEL_FS))
    prof = speed_profile(n, rng, gustiness)
    # excitation: white noise x long-term gain x overlap-added short-term (GARCH) gain
    w1, h1 = 128, 64
    lt = np.sqrt(10 ** (np.polyval(_LT_REGRESSION, prof) / 10))
    st = np.sqrt(np.abs(_garch(_frame_speed(prof, w1, h1), rng)))
    frames = len(st)
    pulses = np.zeros((frames - 1) * h1 + w1)
    pulses[np.arange(frames) * h1] = st
    env = signal.fftconvolve(pulses, np.hanning(w1))[: n + 2 * w1][w1:w1 + n]
    if len(env) < n:
        env = np.pad(env, (0, n - len(env)))
    exc = rng.standard_normal(n) * lt * env
    # turbulence spectrum: speed-dependent all-pole filter, overlap-added in Hann frames
    w2, h2 = 2048, 1024
    speeds = _frame_speed(prof, w2, h2)
    padded = np.concatenate([np.zeros(w2), exc, np.zeros(w2)])
    out = np.zeros_like(padded)
    win = np.hanning(w2)
    for i, s in enumerate(speeds):
        a = i * h2
        if a + w2 > len(padded):
            break
        lpc = lsf_to_lpc(_lsf(s))
        out[a:a + w2] += signal.lfilter([1.0], lpc, padded[a:a + w2] * win)
    y = out[w2:w2 + n]
    y = 0.95 * y / (np.max(np.abs(y)) + 1e-30)
    if fs != MODEL_FS:
        y = resample(y, MODEL_FS, fs)
        y = 0.95 * y / (np.max(np.abs(y)) + 1e-30)
    return y.astype(np.float32), float(np.mean(np.clip(prof, 0, None)))


def _lsf(speed: float) -> np.ndarray:
    return np.array([np.polyval(_LSF_REGRESSION[:, k], speed) for k in range(_LSF_REGRESSION.shape[1])])
