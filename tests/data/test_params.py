"""Parameter sampling: the challenge's distributions, grammar and determinism."""
from collections import Counter

import numpy as np
import pytest

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data import augmentation as A
from use_repro.data.manifest import ScpEntry
from use_repro.data.params import Pool, SimConfig, SpeechItem, sample_row, sample_split, select_speech

OFFICIAL = [
    "none",
    "bandwidth_limitation-kaiser_fast->24000",
    "bandwidth_limitation-none->8000",
    "clipping(min=0.01818212389942411,max=0.9425406853049546)",
    "codec(format=mp3,encoder=None,qscale=7)",
    "codec(format=ogg,encoder=opus,qscale=3)",
    "codec(format=ogg,encoder=vorbis,qscale=-1)",
    "packet_loss(packet_loss_indices=[43, 44, 45, 46, 12, 13],packet_duration_ms=20)",
    "wind_noise(threshold=0.2210436,ratio=13.26,attack=47.1,release=5.9,sc_gain=1.1,clipping=False,"
    "clipping_threshold=0.93)/",
    "wind_noise(threshold=0.1,ratio=1.5,attack=5.0,release=99.0,sc_gain=0.8,clipping=True,"
    "clipping_threshold=0.9)/codec(format=mp3,encoder=None,qscale=2)/bandwidth_limitation-polyphase->16000",
    "clipping(min=0.05,max=0.95)/packet_loss(packet_loss_indices=[1],packet_duration_ms=20)/"
    "bandwidth_limitation-scipy->22050",
]


@pytest.mark.parametrize("text", OFFICIAL)
def test_official_strings_round_trip(text):
    augs = A.parse(text)
    assert A.format_augmentations(augs) == text


@pytest.mark.parametrize("bad", ["reverse(speed=2)", "codec(format=aac,encoder=None,qscale=3)",
                                 "bandwidth_limitation-magic->8000", "clipping(min=0.9,max=0.1)",
                                 "packet_loss(packet_loss_indices=oops,packet_duration_ms=20)"])
def test_bad_strings(bad):
    with pytest.raises(A.AugmentationError):
        A.parse(bad)


def _speech(n=600):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        fs = SUPPORTED_RATES[i % len(SUPPORTED_RATES)]
        out.append(SpeechItem(f"u{i}", fs, f"/x/u{i}.flac", int(fs * rng.uniform(1, 5)), "s", "t",
                              ("en", "it")[i % 2]))
    return out


def _bank(prefix, rates, n):
    return [ScpEntry(f"{prefix}{r}_{i}", r, f"/x/{prefix}{r}_{i}.flac") for r in rates for i in range(n)]


NOISE = _bank("noise_", (16000, 44100, 48000), 4)
RIRS = _bank("rir_", (48000,), 5)
WIND = _bank("wind_noise_", (48000,), 3)


def test_distributions_match_the_challenge():
    cfg = SimConfig()
    rng = np.random.default_rng(0)
    speech = _speech(700) * 6
    rows = [sample_row(rng, s, Pool(NOISE), Pool(RIRS), Pool(WIND), cfg, f"fileid_{i}")
            for i, s in enumerate(speech)]
    n = len(rows)
    augs = [A.parse(r["augmentation"]) for r in rows]
    wind = [A.is_wind_row(r["noise_uid"], a) for r, a in zip(rows, augs)]
    assert abs(np.mean(wind) - 0.05) < 0.012
    assert abs(np.mean([r["rir_uid"] != "none" for r in rows]) - 0.5) < 0.03
    counts = Counter(sum(not isinstance(x, A.Wind) for x in a) for a in augs)
    for k, p in enumerate((0.25, 0.40, 0.20, 0.15)):
        assert abs(counts[k] / n - p) < 0.03
    for r, a, w in zip(rows, augs, wind):
        snr, fs = float(r["snr_dB"]), int(r["fs"])
        assert (-10 <= snr <= 15) if w else (-5 <= snr <= 20)
        noise_fs = int(r["noise_uid"].split("_")[-2]) if not w else 48000
        assert noise_fs >= fs  # noise at the speech's rate or higher
        kinds = [A.kind_of(x) for x in a if not isinstance(x, A.Wind)]
        assert len(kinds) == len(set(kinds))  # without replacement
        if w:
            assert "clipping" not in kinds
        for x in a:
            if isinstance(x, A.Clipping):
                assert 0 <= x.min_quantile <= 0.1 and 0.9 <= x.max_quantile <= 1
            elif isinstance(x, A.BandwidthLimitation):
                assert x.method in ("kaiser_best", "kaiser_fast", "scipy", "polyphase", "none")
                assert x.fs_new < fs or (fs == 8000 and x.method == "none")
            elif isinstance(x, A.Codec):
                assert (x.format, x.encoder) in (("mp3", None), ("ogg", "vorbis"), ("ogg", "opus"))
                assert (1 <= x.qscale <= 9) if x.format == "mp3" else (-1 <= x.qscale <= 9)
            elif isinstance(x, A.PacketLoss):
                assert x.duration_ms == 20 and len(x.indices) >= 1
            elif isinstance(x, A.Wind):
                p = x.params
                assert 0.1 <= p.threshold <= 0.3 and 1 <= p.ratio <= 20 and 0.85 <= p.clipping_threshold <= 1
    methods = Counter(x.method for a in augs for x in a if isinstance(x, A.BandwidthLimitation) and x.method != "none")
    assert len(methods) == 4 and min(methods.values()) > 0.18 * sum(methods.values())


def test_pool_uses_each_entry_before_reuse():
    pool = Pool(NOISE, reuse=True)
    rng = np.random.default_rng(0)
    first = [pool.pick(rng, 16000).uid for _ in range(len(NOISE))]
    assert len(set(first)) == len(NOISE)  # 16 kHz first, then higher rates
    assert pool.pick(rng, 16000) is not None
    assert Pool(NOISE, reuse=False).pick(rng, 48000).fs == 48000
    empty = Pool(NOISE[:1], reuse=False)
    empty.pick(rng, 8000)
    assert empty.pick(rng, 8000) is None


def test_sample_split_is_deterministic_and_spread(tmp_path):
    cfg = SimConfig.from_config({"simulation": {"splits": {"test": {"rows": 30, "max_speech_s": 4}}}})
    a, _ = sample_split(_speech(), NOISE, RIRS, WIND, cfg, "test", 0, tmp_path)
    b, _ = sample_split(_speech(), NOISE, RIRS, WIND, cfg, "test", 0, tmp_path)
    c, _ = sample_split(_speech(), NOISE, RIRS, WIND, cfg, "test", 1, tmp_path)
    assert a == b and a != c and len(a) == 30
    assert {r["fs"] for r in a} == {str(r) for r in SUPPORTED_RATES}
    assert {r["lang"] for r in a} == {"en", "it"}
    assert [int(r["fs"]) for r in a] == sorted((int(r["fs"]) for r in a), reverse=True)
    assert all(int(r["length"]) <= 4 * int(r["fs"]) for r in a)
    assert a[0]["id"] == "fileid_1" and a[0]["noisy_path"].endswith("noisy/0/fileid_1.flac")


def test_select_speech_covers_groups():
    items = _speech(140)
    got = select_speech(items, 14, np.random.default_rng(0))
    assert len({(i.fs, i.lang) for i in got}) == 14
