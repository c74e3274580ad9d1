"""The three dereverberation targets (and the early windows), alone and through render_row."""
import numpy as np
import pytest
import scipy.signal

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data.distortions.noise import snr_active
from use_repro.data.distortions.reverb import direct_path_index, early_rir, rir_start
from use_repro.data.render import RenderSettings, Sources, read_source, render_row
from use_repro.data.targets import make_targets, target_column, target_names, window_rir

from .sim_fixtures import rir_48k, write_corpus


def xcorr_peak_lag(y, x):
    """Lag (samples) at which x best matches y: positive when y is x delayed."""
    c = scipy.signal.correlate(y, x, mode="full", method="fft")
    return int(np.argmax(c)) - (len(x) - 1)


def test_rir_start_and_early_cut():
    assert rir_start(np.array([0, 0, 1, 0.5, 0.1])) == 2  # sms_wsj's doctest
    h = np.zeros(1000)
    h[100], h[95], h[90], h[500] = 1.0, 0.2, 0.05, 0.3
    assert rir_start(h) == 95 and direct_path_index(h) == 100
    e = early_rir(h, fs=8000, seconds=0.05)  # 400 samples after the start
    assert np.array_equal(e[:495], h[:495]) and not e[495:].any()


@pytest.mark.parametrize("fs", SUPPORTED_RATES)
def test_targets_definitions(fs):
    rng = np.random.default_rng(fs)
    s = rng.standard_normal(int(0.8 * fs))
    import soxr

    h = soxr.resample(rir_48k(fs, delay_ms=12), 48000, fs, quality="HQ")
    windows = (50, 25, 10, 0)
    reverberant, t = make_targets(s, h, fs, windows)
    n0 = direct_path_index(h)
    a = h[n0]
    assert set(t) == set(target_names(windows))
    # early = dry speech convolved with the challenge's truncated RIR (direct convolution)
    assert np.allclose(t["early"], np.convolve(s, np.trim_zeros(early_rir(h, fs), "b"))[:s.size], atol=1e-9)
    assert np.allclose(reverberant, scipy.signal.oaconvolve(s, h)[:s.size], atol=1e-9)
    # shifted = a * s[n - n0]; anechoic = a * s[n]
    assert np.array_equal(t["shifted"][n0:], a * s[:s.size - n0]) and not t["shifted"][:n0].any()
    assert np.array_equal(t["anechoic"], a * s)
    # 0 ms window == shifted, bit for bit; wider windows = s * h[n0 : n0 + W]
    assert np.array_equal(t["early0ms"], t["shifted"])
    assert np.allclose(t["early25ms"], np.convolve(s, np.trim_zeros(window_rir(h, fs, 25), "b"))[:s.size], atol=1e-9)
    # alignment: shifted peaks at lag 0 against the mixture's direct path, anechoic n0 early
    assert xcorr_peak_lag(reverberant, t["shifted"]) == 0
    assert xcorr_peak_lag(reverberant, t["anechoic"]) == n0


def test_unit_gain_and_dry_rows():
    s = np.random.default_rng(0).standard_normal(8000)
    h = rir_48k(1)[:4000]
    _, t = make_targets(s, h, 8000, (0, 20), gain="unit")
    n0 = direct_path_index(h)
    assert np.array_equal(t["anechoic"], s) and np.allclose(t["shifted"][n0:], s[:-n0])
    assert np.array_equal(t["early0ms"], t["shifted"])
    rev, t = make_targets(s, None, 8000, (50, 0))
    assert rev is None and all(v is s for v in t.values())
    assert target_column("early") == "clean_path" and target_column("early50ms") == "clean_early50ms_path"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), seconds=1.0)


def _sources(root):
    from use_repro.audio.io import write_audio
    from use_repro.data.manifest import ScpEntry, read_scp

    # White "speech" for the alignment check: a harmonic signal's autocorrelation peaks at
    # every pitch period, white noise's only at lag 0.
    sp, no, ri = [], [], []
    for fs in SUPPORTED_RATES:
        p = root / "white" / f"white_{fs}.flac"
        if not p.exists():
            write_audio(p, 0.2 * np.random.default_rng(fs).standard_normal(fs), fs)
        sp.append(ScpEntry(f"white_{fs}", fs, str(p)))
    for split in ("train", "valid", "test"):
        sp += read_scp(root / split / "speech.scp")
        no += read_scp(root / split / "noise.scp") + read_scp(root / split / "wind_noise.scp")
        ri += read_scp(root / split / "rir.scp")
    return Sources(sp, no, ri)


@pytest.mark.parametrize("fs", SUPPORTED_RATES)
def test_rendered_targets_at_every_rate(corpus, fs):
    src = _sources(corpus)
    row = {"id": f"fileid_{fs}", "speech_uid": f"white_{fs}", "noise_uid": "train_noise_48000_0",
           "snr_dB": "7.5", "rir_uid": "train_rir_1", "augmentation": "none", "fs": str(fs), "length": "none"}
    out, info = render_row(row, src, RenderSettings(windows_ms=(50, 10, 0)), return_info=True)
    assert info["reverberant"]
    n0 = info["n0"]
    reverberant = out["noisy"] - out["noise"]  # the scaled reverberant speech
    assert abs(snr_active(reverberant, out["noise"]) - 7.5) < 0.1
    assert np.array_equal(out["early0ms"], out["shifted"])
    assert xcorr_peak_lag(reverberant, out["shifted"]) == 0
    assert xcorr_peak_lag(reverberant, out["anechoic"]) == n0
    dry = read_source(src.speech[row["speech_uid"]], fs)
    h = read_source(src.rir["train_rir_1"], fs)
    assert np.allclose(out["early"], info["scale"] * np.convolve(dry, np.trim_zeros(early_rir(h, fs), "b"))[:dry.size], atol=1e-9)
    assert max(np.abs(v).max() for v in out.values()) <= 0.99 + 1e-12
    # dry row: every target is the dry speech, scaled like the mixture
    row_dry = dict(row, rir_uid="none")
    out, info = render_row(row_dry, src, RenderSettings(windows_ms=(50, 0)), return_info=True)
    for name in ("early", "shifted", "anechoic", "early50ms", "early0ms"):
        assert np.array_equal(out[name], dry * info["scale"])
    assert abs(snr_active(out["noisy"] - out["noise"], out["noise"]) - 7.5) < 0.1


@pytest.mark.parametrize("quirks", [True, False])
def test_dry_wind_rows_keep_the_challenge_quirk(corpus, quirks):
    src = _sources(corpus)
    aug = ("wind_noise(threshold=0.2,ratio=8.0,attack=20.0,release=50.0,sc_gain=1.0,clipping=False,"
           "clipping_threshold=0.9)/")
    row = {"id": "fileid_3", "speech_uid": "train_sp_16000_0", "noise_uid": "wind_noise_train_48000hz_0",
           "snr_dB": "0.0", "rir_uid": "none", "augmentation": aug, "fs": "16000", "length": "none"}
    out, info = render_row(row, src, RenderSettings(windows_ms=(0,), wind_quirks=quirks), return_info=True)
    dry = read_source(src.speech["train_sp_16000_0"], 16000)
    ratio = out["early"][dry != 0] / dry[dry != 0]
    assert np.allclose(ratio, ratio[0]) and info["wind"]
    # with the quirk the target carries the compressor's pre-scale 0.9 / peak on top of the final scale
    assert np.isclose(ratio[0], info["scale"]) != quirks
    at_extremes = int((out["noisy"] == out["noisy"].max()).sum() + (out["noisy"] == out["noisy"].min()).sum())
    assert (at_extremes > 2) == quirks  # clipping=False is clipped only with the quirk
