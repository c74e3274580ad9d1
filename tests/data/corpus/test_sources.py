"""Each corpus source on its own: sentences, degradations, noise, RIRs, wind, Debian catalogue, TTS."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data.corpus import crowd, debian, noise, rir, sentences, wind
from use_repro.data.corpus.build import _rate_quota
from use_repro.seeding import rng_for
from use_repro.stage_settings import CorpusSettings

from .fakes import voiced


def test_sentences_are_distinct_and_seeded():
    a = sentences.sentences(300, np.random.default_rng(3))
    b = sentences.sentences(300, np.random.default_rng(3))
    assert a == b and len(set(a)) == 300
    assert not any(ch.isdigit() for s in a for ch in s), "numbers are spelled out for ASR scoring"
    c = sentences.sentences(50, np.random.default_rng(4), exclude=set(a))
    assert not set(c) & set(a)


def test_rate_quota_covers_every_rate_in_proportion():
    q = _rate_quota(100, list(SUPPORTED_RATES), [1, 1, 10, 2, 2, 2, 2])
    assert len(q) == 100 and set(q) == set(SUPPORTED_RATES)
    assert q.count(22050) == 50
    assert set(_rate_quota(7, list(SUPPORTED_RATES), [1, 1, 10, 2, 2, 2, 2])) == set(SUPPORTED_RATES)


@pytest.mark.parametrize("kind", crowd.KINDS)
@pytest.mark.parametrize("fs", [8000, 22050, 48000])
def test_degradation_is_what_it_says(kind, fs):
    x = voiced(fs, 2.0, 150, 0)
    clean, dirty, p = crowd.degrade(x, fs, kind, np.random.default_rng(1))
    assert clean.shape == dirty.shape == x.shape
    assert np.max(np.abs(dirty)) <= 0.95 + 1e-6
    d = dirty.astype(np.float64) - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(d**2))
    if kind == "codec":
        assert p["bitrate_kbps"] > 0 and snr < 45
        # the decoded signal is aligned with the original (codec delay removed)
        assert np.corrcoef(clean, dirty)[0, 1] > 0.9
    else:
        assert abs(snr - p["snr_dB"]) < 0.01
        assert 15 <= p["snr_dB"] <= 40


def test_hum_sits_at_mains_frequency():
    fs = 16000
    x = voiced(fs, 2.0, 150, 0)
    clean, dirty, p = crowd.degrade(x, fs, "hum", np.random.default_rng(5))
    d = dirty - clean
    spec = np.abs(np.fft.rfft(d))
    f = np.fft.rfftfreq(len(d), 1 / fs)
    assert abs(f[np.argmax(spec)] - p["hum_hz"]) < 1.0


@pytest.mark.parametrize("kind", sorted(noise.CATEGORY))
def test_every_noise_type_renders_at_every_rate(kind):
    if kind == "real_sfx":
        y, fs = noise.real_sfx(np.random.default_rng(0).standard_normal(96000).astype(np.float32), 96000)
        assert fs == 48000
        return
    talkers = [(voiced(8000, 1.5, 120 + 10 * i, i), 8000) for i in range(5)]
    for fs in SUPPORTED_RATES:
        y = noise.synth(kind, fs // 2, fs, np.random.default_rng(0), talkers)
        assert y.shape == (fs // 2,) and np.isfinite(y).all()
        assert abs(np.sqrt(np.mean(y.astype(np.float64) ** 2)) - noise.TARGET_RMS) < 0.02 or np.max(np.abs(y)) > 0.98


def test_noise_types_of_train_and_test_are_disjoint_and_categorised():
    assert not set(noise.TRAIN_TYPES) & set(noise.TEST_TYPES)
    assert set(noise.TRAIN_TYPES) | set(noise.TEST_TYPES) == set(noise.CATEGORY)


def test_schroeder_rt60_of_a_known_exponential_decay():
    fs = 16000
    rng = np.random.default_rng(0)
    for t60 in (0.3, 0.8, 1.2):
        t = np.arange(int(1.5 * t60 * fs)) / fs
        h = rng.standard_normal(t.size) * np.exp(-6.9078 * t / t60)
        assert abs(rir.schroeder_rt60(h, fs) - t60) < 0.03 * t60


def test_rir_rt60_and_delay_across_the_ranges():
    rng = np.random.default_rng(7)
    for size, rng_rt in (({"x": [3, 8], "y": [3, 7], "z": [2.4, 3.5]}, (0.2, 0.9)),
                         ({"x": [8, 14], "y": [6, 10], "z": [3, 5]}, (0.9, 1.3))):
        for _ in range(4):
            dims, rt60 = rir.sample_room(rng, size, rng_rt)
            src, mic = rir.place(rng, dims, (5, 30))
            spec = rir.RoomSpec("r", dims, rt60, src, mic)
            h, measured = rir.render(spec, rng, rng_rt)
            assert rng_rt[0] <= measured <= rng_rt[1]
            assert abs(measured - rt60) <= 0.1 * rt60
            assert 5 <= spec.delay_ms <= 30
            assert abs(rir.direct_delay_ms(h, rir.FS) - spec.delay_ms) < 1000 / rir.FS


def test_lsf_to_lpc_gives_stable_all_pole_filters():
    for speed in np.linspace(2, 18, 9):
        a = wind.lsf_to_lpc(wind._lsf(speed))
        assert a[0] == pytest.approx(1.0) and len(a) == 6
        assert np.all(np.abs(np.roots(a)) < 1.0)
    # a known case: LSFs equally spaced give A(z) = 1 for the order-2 symmetric pair
    a = wind.lsf_to_lpc(np.array([np.pi / 3, 2 * np.pi / 3]))
    assert np.allclose(np.abs(np.roots(a)), np.abs(np.roots(a))[0])


@pytest.mark.parametrize("fs", SUPPORTED_RATES)
def test_wind_is_gusty_and_low_frequency(fs):
    x, speed = wind.wind_noise(4.0, fs, np.random.default_rng(fs), gustiness=8)
    assert len(x) == 4 * fs and np.isfinite(x).all() and speed > 0
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / fs)
    assert spec[f < 500].sum() / spec.sum() > 0.8
    assert spec[f < 200].sum() / spec.sum() > 0.5
    # gusts: the 100 ms level varies by more than 10 dB over the clip
    frames = x[: len(x) // (fs // 10) * (fs // 10)].reshape(-1, fs // 10)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    assert level.max() - level.min() > 10


def test_wind_same_seed_same_noise():
    a, _ = wind.wind_noise(1.0, 16000, rng_for(0, "w"), 5)
    b, _ = wind.wind_noise(1.0, 16000, rng_for(0, "w"), 5)
    assert np.array_equal(a, b)


def test_debian_catalogue_roles_and_transcripts(fake_cache):
    roots, missing = debian.fetch_packages(debian.ALL_PACKAGES, fake_cache, offline=True)
    assert not missing
    groups = {g.name: g for g in debian.speech_groups(roots)}
    assert groups["asterisk-it"].role == "test" and groups["asterisk-ru"].role == "test"
    assert groups["asterisk-en"].role == "trainval" and groups["asterisk-en"].spk == groups["asterisk-es"].spk
    en = groups["asterisk-en"].items
    assert all(it.text and "[" not in it.text for it in en)
    assert not any(it.uid.endswith("beep") for it in en), "tones listed as [..] in the transcripts are not speech"
    assert groups["ps-librivox"].items[0].text.startswith("he was not")
    for g in groups.values():
        for it in g.items[:2]:
            x, fs = debian.read_item(it)
            assert fs == it.fs and len(x) > 0
    assert {it.fs for it in debian.noise_files(roots)} == {44100, 48000, 96000}


def test_fetch_reports_why_a_package_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    roots, missing = debian.fetch_packages(["asterisk-core-sounds-en-wav"], tmp_path)
    assert not roots and "no apt-get" in missing["asterisk-core-sounds-en-wav"]


def _job(uid, fs, split="test"):
    from use_repro.data.corpus.build import SpeechJob

    return SpeechJob(uid, split, "x", "x", "s", "en", None, fs, fs)


def test_assign_test_rates_fills_every_rate_from_higher_rates_first():
    from use_repro.data.corpus.build import assign_test_rates

    jobs = ([_job(f"a{i}", 8000) for i in range(30)] + [_job(f"b{i}", 16000) for i in range(20)]
            + [_job(f"c{i}", 44100) for i in range(40)] + [_job(f"d{i}", 48000) for i in range(3)])
    new = assign_test_rates(jobs, list(SUPPORTED_RATES), 0.2, np.random.default_rng(0))
    assert new == assign_test_rates(jobs, list(SUPPORTED_RATES), 0.2, np.random.default_rng(0))
    assert len(new) == round(0.2 * len(jobs))
    native = {j.uid: j.native_fs for j in jobs}
    assert {22050, 24000, 32000} <= set(new.values()), "every rate the test split lacks gets speech"
    assert not {8000, 16000, 44100} & set(new.values()), "plentiful rates get none"
    for uid, fs in new.items():
        assert native[uid] != fs
        if fs < 44100:
            assert native[uid] == 44100, (uid, fs)  # downsampled from the rate with most to spare
    after = {r: sum(1 for j in jobs if new.get(j.uid, j.native_fs) == r) for r in SUPPORTED_RATES}
    assert min(after.values()) > 0
    assert after[44100] >= len(jobs) / len(SUPPORTED_RATES) - 1, "a donor keeps about its fair share"


def test_assign_test_rates_edge_cases():
    from use_repro.data.corpus.build import assign_test_rates

    rng = np.random.default_rng(1)
    assert assign_test_rates([], list(SUPPORTED_RATES), 0.2, rng) == {}
    jobs = [_job(f"a{i}", 16000) for i in range(12)]
    assert assign_test_rates(jobs, list(SUPPORTED_RATES), 0.0, rng) == {}
    # one native rate only: every other rate still gets one (upsampled where nothing is higher)
    new = assign_test_rates(jobs, list(SUPPORTED_RATES), 0.1, rng)
    assert set(new.values()) == set(SUPPORTED_RATES) - {16000}
    # every rate already has its share: nothing is converted
    even = [_job(f"{r}_{i}", r) for r in SUPPORTED_RATES for i in range(3)]
    assert assign_test_rates(even, list(SUPPORTED_RATES), 0.3, rng) == {}
    # never more than half the split
    few = [_job("x0", 8000), _job("x1", 8000), _job("x2", 8000)]
    assert len(assign_test_rates(few, list(SUPPORTED_RATES), 0.5, rng)) == 1


def test_ktuberling_word_lists(fake_cache):
    roots, _ = debian.fetch_packages(debian.ALL_PACKAGES, fake_cache, offline=True)
    kt = [g for g in debian.speech_groups(roots) if g.source == "ktuberling"]
    assert {g.lang for g in kt} == {"en", "it", "ru"}, "only English and the held-out languages"
    assert all(g.role == "test" and g.spk == f"kt_{g.lang}" for g in kt)
    en = next(g for g in kt if g.lang == "en")
    assert en.items[0].fs == 44100 and en.items[0].text == "ball palm tree hat UFO"
    assert all(it.text is None for g in kt if g.lang != "en" for it in g.items)
    for g in kt:
        for it in g.items:
            x, fs = debian.read_item(it)
            parts = [sf.info(p).frames for p in it.parts]
            assert fs == it.fs and len(x) == sum(parts) + round(debian.JOIN_PAUSE_S * fs) * (len(parts) - 1)
    # joined lists are long enough to be utterances (the last one of a group may be shorter)
    assert all(sum(sf.info(p).duration for p in it.parts) >= 2.5 for it in en.items[:-1])


def test_flite_voices_and_reasons(fake_cache, tmp_path):
    from use_repro.data.corpus import flite

    roots, _ = debian.fetch_packages(debian.ALL_PACKAGES, fake_cache, offline=True)
    fl, voices, why = flite.available(roots, ["slt", "awb", "nosuchvoice"])
    assert why is None and voices == ["slt", "awb"]
    x, fs = fl.synthesize("slt", "A short sentence for the test.", 1.2)
    y, _ = fl.synthesize("slt", "A short sentence for the test.", 1.2)
    assert fs == flite.NATIVE_FS["slt"] and len(x) > fs and np.array_equal(x, y)
    assert flite.available(roots, ["nosuchvoice"])[2].startswith("none of the voices")
    assert "not available" in flite.available({}, ["slt"])[2]
    broken = dict(roots, flite=tmp_path / "nowhere")
    assert "missing" in flite.available(broken, ["slt"])[2]


def test_without_real_heldout_speakers_flite_takes_the_test_split(fake_cache, tmp_path):
    from pathlib import Path

    from use_repro.data.corpus.build import plan_corpus

    from .conftest import tiny_config

    cache = tmp_path / "cache"
    (cache / "debian").mkdir(parents=True)
    gone = {"asterisk-core-sounds-it-wav", "asterisk-core-sounds-ru-wav", "pocketsphinx-testdata", "alsa-utils",
            "ktuberling-data"}
    for pkg in (fake_cache / "debian").iterdir():
        if pkg.name not in gone:
            (cache / "debian" / pkg.name).symlink_to(pkg)
    plan = plan_corpus(CorpusSettings.from_config(tiny_config(cache, sources=["debian", "flite"])), Path(tmp_path / "out"))
    test = [j for j in plan.speech if j.split == "test"]
    assert test and {j.origin for j in test} == {"flite"}
    assert len(test) * 4.95 * 1.05 >= 0.5 * 60, "flite fills the test minutes"
    assert any("flite's synthetic voices only" in w for w in plan.warnings)
    assert not any(j.tts for j in plan.speech if j.split == "test"), "not the training TTS voice"


def test_ktuberling_train_languages(fake_cache):
    """corpus.ktuberling_train_languages adds that language's volunteer to train/validation as a
    wide-band voice of its own; ktuberling's test speakers (en, it, ru) are refused by name."""
    roots, _ = debian.fetch_packages(debian.ALL_PACKAGES, fake_cache, offline=True)
    kt = [g for g in debian.speech_groups(roots, ("de",)) if g.source == "ktuberling"]
    de = [g for g in kt if g.lang == "de"]
    assert len(de) == 1 and de[0].role == "trainval" and de[0].spk == "kt_de"
    assert de[0].items[0].fs == 44100 and de[0].items[0].parts and de[0].items[0].text is None
    assert {g.role for g in kt if g.lang != "de"} == {"test"}, "the test speakers are unchanged"
    with pytest.raises(ValueError, match=r"ktuberling_train_languages: \['ru'\]"):
        debian.speech_groups(roots, ("de", "ru"))
    with pytest.raises(ValueError, match=r"no ktuberling sounds for \['dee'\].*languages there: de, en, it, ru"):
        debian.speech_groups(roots, ("dee",))
