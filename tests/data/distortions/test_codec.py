import numpy as np
import pytest

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data.distortions.codec import CodecError, apply_codec, compression_level


def _signal(fs, seconds=1.0):
    t = np.arange(int(fs * seconds)) / fs
    return 0.4 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))


@pytest.mark.parametrize("fs", SUPPORTED_RATES)
@pytest.mark.parametrize("fmt,enc,q", [("mp3", None, 2), ("ogg", "vorbis", 5), ("ogg", "opus", 5)])
def test_codec_round_trip_keeps_length_and_alignment(fs, fmt, enc, q):
    x = _signal(fs)
    y = apply_codec(x, fs, fmt, enc, q)
    assert y.shape == x.shape and np.isfinite(y).all()
    c = np.corrcoef(x[fs // 10:-fs // 10], y[fs // 10:-fs // 10])[0, 1]
    assert c > 0.95, c


def test_quality_scale_orders_distortion():
    fs = 16000
    x = np.random.default_rng(0).standard_normal(fs) * 0.2
    err = [np.mean((apply_codec(x, fs, "ogg", "vorbis", q) - x) ** 2) for q in (0, 9)]
    assert err[1] < err[0]
    assert compression_level("mp3", None, 9) == 0.9 and compression_level("ogg", "vorbis", -1) == 1.0


def test_unknown_codec():
    with pytest.raises(CodecError):
        apply_codec(np.zeros(100), 16000, "aac", None, 3)
