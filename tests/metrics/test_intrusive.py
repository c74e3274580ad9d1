"""Intrusive metrics against direct package calls, torchmetrics, float64 references written
here from the URGENT 2025 algorithms, and theory."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from use_repro.audio.resample import resample
from use_repro.metrics import intrusive as m
from use_repro.metrics import mcd

from .conftest import add_noise

tm_audio = pytest.importorskip("torchmetrics.functional.audio")


@pytest.fixture(scope="module")
def pair(tts_speech):
    x, fs, _ = tts_speech
    return x, add_noise(x, 10.0, seed=1), fs


def test_pesq_wb_matches_pesq_package_and_torchmetrics(pair):
    from pesq import pesq

    ref, est, fs = pair
    ours = m.pesq_score(ref, est, fs)
    assert ours == pytest.approx(pesq(16000, ref, est, "wb"), abs=1e-9)
    tm = tm_audio.perceptual_evaluation_speech_quality(torch.from_numpy(est), torch.from_numpy(ref), 16000, "wb")
    assert ours == pytest.approx(float(tm), abs=1e-5)
    assert 1.0 < ours < 3.5
    assert m.pesq_score(ref, ref, fs) > 4.4


def test_pesq_nb_at_8k_and_wb_after_soxr_above_16k(pair):
    from pesq import pesq

    ref, est, fs = pair
    r8, e8 = resample(ref, fs, 8000), resample(est, fs, 8000)
    assert m.pesq_score(r8, e8, 8000) == pytest.approx(pesq(8000, r8, e8, "nb"), abs=1e-9)
    tm = tm_audio.perceptual_evaluation_speech_quality(torch.from_numpy(e8), torch.from_numpy(r8), 8000, "nb")
    assert m.pesq_score(r8, e8, 8000) == pytest.approx(float(tm), abs=1e-5)
    # 48 kHz: the challenge resamples both to 16 kHz with soxr (HQ) and scores wide band.
    r48, e48 = resample(ref, fs, 48000), resample(est, fs, 48000)
    import soxr

    want = pesq(16000, soxr.resample(r48, 48000, 16000), soxr.resample(e48, 48000, 16000), "wb")
    assert m.pesq_score(r48, e48, 48000) == pytest.approx(want, abs=1e-9)
    with pytest.raises(ValueError, match="8000 Hz or at least 16000"):
        m.pesq_score(r8[:4000], e8[:4000], 11025)


def test_estoi_matches_pystoi_and_torchmetrics_and_is_seeded(pair):
    from pystoi import stoi

    ref, est, fs = pair
    np.random.seed(123)
    ours = m.estoi_score(ref, est, fs)
    np.random.seed(0)
    assert ours == stoi(ref, est, fs, extended=True)
    tm = tm_audio.short_time_objective_intelligibility(torch.from_numpy(est), torch.from_numpy(ref), fs, extended=True)
    assert ours == pytest.approx(float(tm), abs=1e-4)
    assert m.estoi_score(ref, est, fs) == ours  # deterministic whatever the global seed was
    assert 0.5 < ours < 0.99


def test_sdr_matches_torchmetrics_and_theory(pair):
    ref, est, fs = pair
    tm = tm_audio.signal_distortion_ratio(torch.from_numpy(est).double(), torch.from_numpy(ref).double())
    assert m.sdr_score(ref, est) == pytest.approx(float(tm), abs=1e-3)
    # A scaled reference plus white noise at a known power ratio: bss_eval's 512-tap distortion
    # filter absorbs ~512/N of the noise energy, so SDR = 10 log10(g^2 |s|^2 / (|n|^2 (1 - 512/N))).
    rng = np.random.default_rng(7)
    s = ref.astype(np.float64)
    n = rng.standard_normal(len(s))
    g, ratio_db = 0.5, 12.0
    n *= np.sqrt(g ** 2 * np.sum(s ** 2) / np.sum(n ** 2) / 10 ** (ratio_db / 10))
    theory = 10 * np.log10(g ** 2 * np.sum(s ** 2) / (np.sum(n ** 2) * (1 - 512 / len(s))))
    assert m.sdr_score(ref, (g * s + n).astype(np.float32)) == pytest.approx(theory, abs=0.05)
    # A purely scaled (or short-filtered) reference is distortion-free: the 50 dB clamp.
    assert m.sdr_score(ref, 0.3 * ref) == pytest.approx(50.0, abs=0.01)
    assert m.sdr_score(ref, np.convolve(ref, [0.5, 0.3, 0.1])[:len(ref)].astype(np.float32)) == pytest.approx(50.0, abs=0.5)


def sdr_reference(ref: np.ndarray, est: np.ndarray, taps: int = 512) -> float:
    """bss_eval SDR from its definition, in float64 with NumPy/SciPy alone: the 512-tap filter
    projecting `est` [T] onto delayed copies of `ref` [T] solves the Toeplitz normal equations
    R h = c (R: autocorrelation of ref, c: its cross-correlation with est, lags 0..511);
    coherence = c^T h / |est|^2 and SDR = 10 log10(coh / (1 - coh))."""
    from scipy.linalg import solve_toeplitz
    from scipy.signal import correlate

    r, e = ref.astype(np.float64), est.astype(np.float64)
    n = len(r)
    acf = correlate(r, r, mode="full", method="direct")[n - 1:n - 1 + taps]
    xc = correlate(e, r, mode="full", method="direct")[n - 1:n - 1 + taps]
    h = solve_toeplitz(acf, xc)
    coh = float(xc @ h) / float(e @ e)
    return 10 * np.log10(coh / (1 - coh))


def test_sdr_equals_a_float64_reference_under_one_and_two_threads(pair):
    ref, est, fs = pair
    ref, est = ref[:24000], est[:24000]
    # A filtered, delayed estimate with noise: the distortion filter has work to do.
    est = (np.convolve(est, [0.0, 0.7, 0.2, -0.1])[:len(est)]).astype(np.float32)
    want = sdr_reference(ref, est)
    old = torch.get_num_threads()
    try:
        got = {}
        for n in (1, 2):
            torch.set_num_threads(n)
            got[n] = m.sdr_score(ref, est)
            assert torch.get_num_threads() == n  # the caller's setting is restored
    finally:
        torch.set_num_threads(old)
    assert got[1] == got[2]  # bit for bit, whatever the thread count
    # Two float64 implementations of the same definition agree to ~1e-6 dB here, not 1e-12:
    # speech's 512x512 autocorrelation matrix is ill-conditioned, so the last bits of the
    # correlations (direct sums here, FFTs in fast_bss_eval) move the solution that much. The
    # float32 computation we replaced was off by up to 0.05 dB, and 0.3 dB on two threads.
    assert got[1] == pytest.approx(want, abs=1e-5)
    # float32 input and float64 input of the same samples give the same value
    assert m.sdr_score(ref.astype(np.float64), est.astype(np.float64)) == got[1]


def test_lsd_and_mcd_of_identical_signals_are_zero_and_scale_free(pair):
    ref, est, fs = pair
    # LSD keeps the challenge's eps terms inside the log, log(|R|^2 / (|R| + 1e-8)^2 + 1e-8): an
    # identical pair scores 0 up to those terms (4e-8 for a signal without near-zero STFT bins)
    # and a little more where the TTS clip has digital near-silence (bins of ~1e-7).
    x = (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    assert m.lsd_score(x, x, 16000) < 1e-6
    assert m.mcd_score(x, x, 16000) < 1e-6
    assert m.lsd_score(ref, ref, fs) < 0.05
    assert m.lsd_score(ref, 4.0 * ref, fs) == pytest.approx(m.lsd_score(ref, ref, fs), abs=1e-3)
    assert m.mcd_score(ref, ref, fs) < 1e-6
    assert m.mcd_score(ref, 0.25 * ref, fs) < 1e-4  # the least-squares gain is undone first
    assert m.lsd_score(ref, est, fs) > 1.0 and m.mcd_score(ref, est, fs) > 1.0


def test_lsd_stft_equals_librosa(pair):
    librosa = pytest.importorskip("librosa")
    ref, est, fs = pair
    n_fft, hop = int(fs * m.LSD_WIN_S), int(fs * m.LSD_HOP_S)
    want = np.abs(librosa.stft(ref.astype(np.float64), n_fft=n_fft, hop_length=hop)).T
    got = m.stft_mag(ref, n_fft, hop)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def lsd_reference(ref: np.ndarray, est: np.ndarray, fs: int, eps: float = 1e-8) -> float:
    """The challenge's lsd_metric written out in float64 with an explicit DFT-by-FFT per frame
    (centred, zero-padded frames; periodic Hann; 32 ms / 16 ms); the scale factor in float32 as
    the challenge's float32 arrays compute it."""
    ref32, est32 = ref.astype(np.float32), est.astype(np.float32)
    est32 = est32 * (np.sum(ref32 * est32) / (np.sum(est32 ** 2) + eps))
    n_fft, hop = int(fs * 0.032), int(fs * 0.016)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)

    def mag(x):
        x = np.concatenate([np.zeros(n_fft // 2), x.astype(np.float64), np.zeros(n_fft // 2)])
        frames = [x[i:i + n_fft] * win for i in range(0, len(x) - n_fft + 1, hop)]
        return np.abs(np.fft.fft(np.array(frames), axis=1)[:, :n_fft // 2 + 1])

    r, e = mag(ref32), mag(est32)
    per_frame = [np.sqrt(np.mean(np.log(r[t] ** 2 / (e[t] + eps) ** 2 + eps) ** 2)) for t in range(len(r))]
    return float(np.mean(per_frame))


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 32000, 44100, 48000])
def test_lsd_equals_a_float64_reference_at_every_rate(pair, rate):
    ref, est, fs = pair
    r = resample(ref[:16000], fs, rate).astype(np.float32)
    e = resample(est[:16000], fs, rate).astype(np.float32)
    assert m.lsd_score(r, e, rate) == pytest.approx(lsd_reference(r, e, rate), abs=1e-6)


def test_lsd_equals_the_challenges_librosa_path(pair):
    # The challenge's own code path: float32 arrays, librosa.stft (float64 arithmetic, complex64
    # result), then float32 arithmetic; ours agrees to float32 round-off (it was 1.4e-4 off when
    # our STFT itself ran in float32).
    librosa = pytest.importorskip("librosa")
    ref, est, fs = pair
    eps = 1e-8
    inf = est * (np.sum(ref * est) / (np.sum(est ** 2) + eps))
    n_fft, hop = int(fs * 0.032), int(fs * 0.016)
    rs = np.abs(librosa.stft(ref, hop_length=hop, n_fft=n_fft)).T
    es = np.abs(librosa.stft(inf, hop_length=hop, n_fft=n_fft)).T
    official = np.mean(np.mean(np.log(rs ** 2 / ((es + eps) ** 2) + eps) ** 2, axis=1) ** 0.5, axis=0)
    assert m.lsd_score(ref, est, fs) == pytest.approx(float(official), abs=1e-5)


# URGENT 2025's _get_best_mcep_params (evaluation_metrics/mcd_utils.py), written out here so a
# wrong constant in the module fails this test.
OFFICIAL_MCEP = {8000: (13, 0.31), 16000: (23, 0.42), 22050: (34, 0.45), 24000: (34, 0.46),
                 32000: (36, 0.50), 44100: (39, 0.53), 48000: (39, 0.55)}


def mcd_reference(ref: np.ndarray, est: np.ndarray, fs: int, eps: float = 1e-8) -> float:
    """The challenge's mcd_metric: float32 scale alignment, SPTK mcep of unpadded 1024-sample
    Hamming frames 256 apart (float64), pure-Python fastdtw with scipy's euclidean, the reference
    as the first sequence, mean of 10/ln10 sqrt(2 sum d^2) along the path."""
    from fastdtw.fastdtw import fastdtw
    from scipy.spatial.distance import euclidean

    from use_repro.metrics._compat import import_pysptk

    pysptk = import_pysptk()
    order, alpha = OFFICIAL_MCEP[fs]
    ref32, est32 = ref.astype(np.float32), est.astype(np.float32)
    est32 = est32 * (np.sum(ref32 * est32) / (np.sum(est32 ** 2) + eps))
    win = pysptk.sptk.hamming(1024)

    def mcep(x):
        n = (len(x) - 1024) // 256 + 1
        return np.stack([pysptk.mcep(x[256 * i:256 * i + 1024] * win, order, alpha, eps=1e-6, etype=1)
                         for i in range(n)])

    a, b = mcep(ref32), mcep(est32)
    _, path = fastdtw(a, b, dist=euclidean)
    ia, ib = np.array(path).T
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2 * np.sum((a[ia] - b[ib]) ** 2, axis=1))))


def test_mcd_constants_are_the_challenges():
    assert mcd.MCEP_PARAMS == OFFICIAL_MCEP


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 32000, 44100, 48000])
def test_mcd_equals_the_challenges_algorithm_at_every_rate(pair, rate):
    ref, est, fs = pair
    r = resample(ref[:12000], fs, rate).astype(np.float32)
    # a filtered estimate, so the DTW path leaves the diagonal
    e = np.convolve(resample(est[:12000], fs, rate), [0.5, 0.3, 0.2])[:len(r)].astype(np.float32)
    want = mcd_reference(r, e, rate)
    assert mcd.mel_cepstrum(r, rate).shape[1] == OFFICIAL_MCEP[rate][0] + 1
    assert m.mcd_score(r, e, rate) == pytest.approx(want, abs=1e-9)
    assert m.mcd_score(r, e, rate, dtw="fastdtw", mcep="sptk") == pytest.approx(want, abs=1e-12)
    # the batched mel-cepstra equal pysptk's frame-by-frame ones, digital silence included
    r0 = np.concatenate([np.zeros(3000, np.float32), r])
    np.testing.assert_allclose(mcd.mel_cepstrum(r0, rate), mcd.mel_cepstrum(r0, rate, "sptk"), rtol=0, atol=1e-10)


def test_mel_cepstrum_in_blocks_and_its_fallback_to_pysptk_when_a_system_is_singular(pair, monkeypatch):
    ref, _, fs = pair
    want = mcd.mel_cepstrum(ref[:8000], fs, "sptk")
    monkeypatch.setattr(mcd, "MCEP_CHUNK", 7)  # blocks of 7 frames (28 frames here): same values
    np.testing.assert_allclose(mcd.mel_cepstrum(ref[:8000], fs), want, rtol=0, atol=1e-10)

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(np.linalg, "solve", singular)
    np.testing.assert_array_equal(mcd.mel_cepstrum(ref[:8000], fs), want)
    with pytest.raises(ValueError, match="unknown mel-cepstrum backend"):
        mcd.mel_cepstrum(ref[:8000], fs, "gpu")


def test_mcd_with_digital_silence_in_both_signals(pair):
    # Repeated identical frames (exact zeros in both signals) make DTW ties; the challenge's
    # pure-Python fastdtw breaks them its own way (fastdtw's compiled extension does not, and
    # gives up to 1.9 dB more here), and so must we.
    ref, est, fs = pair
    z = np.zeros(8000, np.float32)
    r = np.concatenate([z, ref[:24000], z])
    noise = (est[:24000] - ref[:24000]).astype(np.float32)
    part = r.copy()
    part[9000:20000] += noise[:11000]  # noise on part of the speech only
    for e in (np.concatenate([z, ref[:24000] + noise, z]), part,
              np.concatenate([z, np.convolve(ref[:24000], [0.3, 0.3, 0.3])[:24000].astype(np.float32), z])):
        assert m.mcd_score(r, e, fs) == pytest.approx(mcd_reference(r, e, fs), abs=1e-9)


def test_numpy_fastdtw_gives_the_fastdtw_packages_path():
    from fastdtw.fastdtw import fastdtw
    from scipy.spatial.distance import euclidean

    rng = np.random.default_rng(3)
    cases = [(rng.standard_normal((300, 24)), rng.standard_normal((280, 24))),  # unequal lengths
             (rng.standard_normal((1, 5)), rng.standard_normal((7, 5))),  # below the recursion floor
             (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))]
    walk = np.cumsum(rng.standard_normal((257, 13)), axis=0)
    cases.append((walk, walk + 0.2 * rng.standard_normal(walk.shape)))
    flat = np.zeros((120, 8))
    flat[40:80] = rng.standard_normal((40, 8))
    cases.append((flat, np.roll(flat, 3, axis=0)))  # long runs of identical frames: ties
    for x, y in cases:
        _, want = fastdtw(x, y, dist=euclidean)
        ix, iy = mcd.fastdtw_path(x, y)
        assert list(zip(ix.tolist(), iy.tolist())) == [tuple(map(int, p)) for p in want], (x.shape, y.shape)
    with pytest.raises(ValueError, match="unknown DTW backend"):
        mcd.dtw_path(cases[0][0], cases[0][1], "cuda")
    with pytest.raises(ValueError, match="same dim"):
        mcd.fastdtw_path(np.zeros((4, 3)), np.zeros((4, 2)))


def test_mcd_rejects_an_unsupported_rate(pair):
    ref, _, _ = pair
    with pytest.raises(ValueError, match="no mel-cepstral setting"):
        mcd.mel_cepstrum(ref, 11025)


def test_mismatched_pairs_are_rejected(pair):
    ref, est, fs = pair
    for fn in (m.lsd_score, m.mcd_score, m.pesq_score, m.estoi_score):
        with pytest.raises(ValueError, match="equal length"):
            fn(ref, est[:-10], fs)
