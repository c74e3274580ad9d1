"""Intrusive metrics against direct package calls, torchmetrics, and theory."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from use_repro.audio.resample import resample
from use_repro.metrics import intrusive as m

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
    want = np.abs(librosa.stft(ref, n_fft=n_fft, hop_length=hop)).T
    np.testing.assert_allclose(m.stft_mag(ref, n_fft, hop), want, rtol=1e-4, atol=1e-5)


def test_mcd_parameters_per_rate_and_dtw(pair):
    from fastdtw import fastdtw
    from scipy.spatial.distance import euclidean

    ref, est, fs = pair
    for rate, (order, _) in m.MCEP_PARAMS.items():
        c = m.mel_cepstrum(resample(ref[:16000], fs, rate), rate)
        assert c.shape[1] == order + 1
    with pytest.raises(ValueError, match="no mel-cepstral setting"):
        m.mel_cepstrum(ref, 11025)
    # MCD = mean over the DTW path of 10/ln10 * sqrt(2 * squared distance), by hand:
    est_s = m.scale_to(ref, est)
    a, b = m.mel_cepstrum(ref, fs), m.mel_cepstrum(est_s, fs)
    _, path = fastdtw(a, b, dist=euclidean)
    want = np.mean([10 / np.log(10) * np.sqrt(2 * np.sum((a[i] - b[j]) ** 2)) for i, j in path])
    assert m.mcd_score(ref, est, fs) == pytest.approx(want, rel=1e-9)


def test_mismatched_pairs_are_rejected(pair):
    ref, est, fs = pair
    for fn in (m.lsd_score, m.mcd_score, m.pesq_score, m.estoi_score):
        with pytest.raises(ValueError, match="equal length"):
            fn(ref, est[:-10], fs)
