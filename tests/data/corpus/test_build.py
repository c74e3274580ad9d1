"""The embedded corpus as built: sizes, rates, splits, RIRs, crowd ground truth, determinism, fallbacks."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from use_repro.audio.io import SUPPORTED_RATES, read_audio
from use_repro.data.corpus import layout, rir
from use_repro.data.corpus.build import CorpusError, build
from use_repro.data.manifest import read_kv, read_scp
from use_repro.stage_settings import CorpusSettings

from .conftest import tiny_config


def tsv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_tiny_builds_every_manifest(tiny_corpus):
    out, _, seconds = tiny_corpus
    print(f"tiny corpus: {seconds:.1f} s")  # a measurement, not a limit (budgets live in bench/)
    for name in layout.manifest_files():
        assert (out / name).exists(), name


def test_manifests_read_back_with_audio(tiny_corpus):
    out, _, _ = tiny_corpus
    speech_uids = set()
    for bank in layout.BANKS:
        for split in layout.SPLITS:
            entries = read_scp(out / layout.scp_name(bank, split), check_audio=True)
            assert entries, f"{bank}_{split}.scp is empty"
            if bank == "speech":
                speech_uids |= {e.uid for e in entries}
    for side in ("utt2spk", "utt2lang"):
        assert set(read_kv(out / side)) == speech_uids
    text = read_kv(out / "text")
    assert set(text) <= speech_uids
    tts = [u for u in speech_uids if "tts_joe" in u]
    assert tts and all(text[u] for u in tts), "every TTS utterance has its transcript"


def test_every_sampling_rate_present(tiny_corpus):
    out, _, _ = tiny_corpus
    info = tsv(out / "speech_info.tsv")
    train_rates = {int(r["fs"]) for r in info if r["split"] == "train"}
    assert train_rates == set(SUPPORTED_RATES)
    for bank in ("noise", "wind_noise"):
        rates = {e.fs for s in layout.SPLITS for e in read_scp(out / layout.scp_name(bank, s))}
        assert rates == set(SUPPORTED_RATES), bank
    # a resampled TTS utterance says so; otherwise only a share of the test split is stored at
    # another rate than its recording's, and says which
    for r in info:
        if r["fs"] != r["native_fs"]:
            assert (r["origin"] == "tts" and r["native_fs"] == "22050") or r["split"] == "test", r
    test = [r for r in info if r["split"] == "test"]
    assert {int(r["fs"]) for r in test} == set(SUPPORTED_RATES), "the test split has speech at every rate"
    converted = [r for r in test if r["fs"] != r["native_fs"] and r["origin"] != "tts"]
    assert 0 < len(converted) <= len(test) // 2


def test_test_split_rates_are_what_speech_info_says(tiny_corpus):
    """Each converted test file is at its listed rate, and an upsampled one holds nothing above
    its native Nyquist frequency (the label tells the truth about the bandwidth)."""
    out, _, _ = tiny_corpus
    info = {r["uid"]: r for r in tsv(out / "speech_info.tsv")}
    native = {"asterisk": {8000}, "pocketsphinx": {16000}, "alsa": {48000}, "ktuberling": {8000, 44100},
              "flite": {8000, 16000}}
    for e in read_scp(out / layout.scp_name("speech", "test")):
        r = info[e.uid]
        assert int(r["native_fs"]) in native[r["origin"]], r
        x, fs = read_audio(e.path)
        assert fs == e.fs == int(r["fs"])
        nfs = int(r["native_fs"])
        if fs > nfs:
            spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
            f = np.fft.rfftfreq(len(x), 1 / fs)
            assert spec[f > 0.5 * nfs * 1.02].sum() < 1e-4 * spec.sum(), e.uid


def test_heldout_english_from_new_speakers_and_labelled_synthetic(tiny_corpus):
    out, _, _ = tiny_corpus
    info = tsv(out / "speech_info.tsv")
    text = read_kv(out / "text")
    test = [r for r in info if r["split"] == "test"]
    seen_spk = {r["spk"] for r in info if r["split"] != "test"}
    fl = [r for r in test if r["source"] == "flite"]
    assert fl and all(r["spk"].startswith("flite_") and r["lang"] == "en" for r in fl)
    assert not {r["spk"] for r in fl} & seen_spk
    assert not any(r["origin"] == "flite" for r in info if r["split"] != "test"), "flite is test only"
    train_text = {text[r["uid"]] for r in info if r["split"] != "test" and r["uid"] in text}
    assert all(text.get(r["uid"]) and text[r["uid"]] not in train_text for r in fl)
    kt = [r for r in test if r["source"] == "ktuberling"]
    assert kt and {r["lang"] for r in kt} <= {"en", "it", "ru"}
    assert all(text.get(r["uid"]) for r in kt if r["lang"] == "en"), "ktuberling English has its words"
    summary = list(csv.DictReader(open(out / "summary.csv")))
    for row in summary:
        if row["kind"] == "speech" and row["group"] in ("flite", "tts"):
            assert "synthetic" in row["note"], row
        if row["kind"] == "speech" and row["group"] in ("ktuberling", "asterisk", "pocketsphinx", "alsa"):
            assert "synthetic" not in row["note"], row
        if row["kind"] == "speech" and row["fs"] != row["native_fs"]:
            assert f"resampled from {row['native_fs']} Hz" in row["note"], row


def test_wind_uids_carry_the_official_prefix(tiny_corpus):
    from use_repro.data.augmentation import is_wind_row
    from use_repro.data.simulate import find_manifest

    out, _, _ = tiny_corpus
    for split, sim_split in zip(layout.SPLITS, ("train", "valid", "test")):  # the simulation's split names
        scp = find_manifest(out, "wind", sim_split)
        assert scp == [out / layout.scp_name("wind_noise", split)]
        uids = [e.uid for e in read_scp(scp[0])]
        assert uids and all(u.startswith("wind_noise_") and is_wind_row(u, []) for u in uids)
    noise = [e.uid for s in layout.SPLITS for e in read_scp(out / layout.scp_name("noise", s))]
    assert not any(is_wind_row(u, []) for u in noise)
    # the first wind clip of every split is at the top rate, so speech at any rate finds one
    rows = tsv(out / "wind_info.tsv")
    assert all(max(int(r["fs"]) for r in rows if r["split"] == s) == 48000 for s in layout.SPLITS)


def test_splits_disjoint_in_speakers_noise_types_rooms(tiny_corpus, tiny_cache):
    out, cfg, _ = tiny_corpus
    info = tsv(out / "speech_info.tsv")
    spk = {s: {r["spk"] for r in info if r["split"] == s} for s in layout.SPLITS}
    assert spk["test"] and not spk["test"] & (spk["train"] | spk["validation"])
    langs = {s: {r["lang"] for r in info if r["split"] == s} for s in layout.SPLITS}
    assert {"it", "ru"} <= langs["test"]
    assert not {"it", "ru"} & (langs["train"] | langs["validation"])
    uids = [{r["uid"] for r in info if r["split"] == s} for s in layout.SPLITS]
    assert not (uids[0] & uids[1] or uids[0] & uids[2] or uids[1] & uids[2])
    text = read_kv(out / "text")
    texts = {s: {text[r["uid"]] for r in info if r["split"] == s and r["uid"] in text} for s in layout.SPLITS}
    assert not texts["train"] & texts["validation"]

    noise = tsv(out / "noise_info.tsv")
    types = {s: {r["type"] for r in noise if r["split"] == s} for s in layout.SPLITS}
    assert types["test"] and not types["test"] & (types["train"] | types["validation"])
    # every test category but the real effects also exists in training, as another type
    cats = {s: {r["category"] for r in noise if r["split"] == s} for s in layout.SPLITS}
    assert cats["test"] - {"real_sfx"} <= cats["train"]

    rooms = {s: {r["room"] for r in tsv(out / "rir_info.tsv") if r["split"] == s} for s in layout.SPLITS}
    assert rooms["test"] and not rooms["test"] & (rooms["train"] | rooms["validation"])
    wind = {s: {e.uid for e in read_scp(out / layout.scp_name("wind_noise", s))} for s in layout.SPLITS}
    assert not wind["test"] & wind["train"]


def test_rirs_have_measured_rt60_and_direct_delay_in_range(tiny_corpus):
    out, cfg, _ = tiny_corpus
    rc = cfg["corpus"]["rir"]
    rows = tsv(out / "rir_info.tsv")
    assert rows
    for r in rows:
        h, fs = read_audio(Path(out) / "audio" / "rir" / r["split"] / f"{r['uid']}.flac")
        assert fs == 48000
        lo, hi = rc["test_rt60"] if r["split"] == "test" else rc["train_rt60"]
        t20 = rir.schroeder_rt60(h, fs)
        t30 = rir.schroeder_rt60(h, fs, -5, -35)
        assert lo - 0.02 <= t20 <= hi + 0.02, (r["uid"], t20)
        assert abs(t20 - float(r["rt60_s"])) < 0.02
        assert abs(t30 - t20) < 0.1 * t20, "decay is exponential: T30 agrees with T20"
        delay = rir.direct_delay_ms(h, fs)
        assert rc["delay_ms"][0] <= delay <= rc["delay_ms"][1]
        assert abs(delay - float(r["delay_ms"])) <= 1000 / fs + 1e-6
        dist = np.linalg.norm([float(r[f"src_{a}"]) - float(r[f"mic_{a}"]) for a in "xyz"])
        assert abs(1000 * dist / 343.0 - float(r["delay_ms"])) < 0.05
    test_vol = [float(r["room_x"]) * float(r["room_y"]) for r in rows if r["split"] == "test"]
    train_vol = [float(r["room_x"]) * float(r["room_y"]) for r in rows if r["split"] != "test"]
    assert min(test_vol) > max(train_vol) * 0.9 or min(test_vol) > 45


def _residual_snr(clean: np.ndarray, dirty: np.ndarray) -> float:
    d = dirty.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(d**2))


def test_crowd_side_file_matches_what_was_done(tiny_corpus):
    out, cfg, _ = tiny_corpus
    rows = {r["uid"]: r for r in tsv(out / "crowd_dirty.tsv")}
    info = {r["uid"]: r for r in tsv(out / "speech_info.tsv")}
    assert set(rows) == set(info)
    crowd = [u for u, r in info.items() if r["source"] == "crowd"]
    train = [u for u, r in info.items() if r["split"] == "train"]
    cc = cfg["corpus"]["crowd"]
    assert len(crowd) == round(cc["share"] * len(train))
    dirty = [u for u in crowd if rows[u]["dirty"] == "1"]
    assert len(dirty) == round(cc["dirty_share"] * len(crowd))
    assert {rows[u]["kind"] for u in dirty} == set(cc["kinds"])
    assert all(rows[u]["dirty"] == "0" for u in info if u not in crowd), "only the crowd share is dirty"
    speech = {e.uid: e.path for s in layout.SPLITS for e in read_scp(out / layout.scp_name("speech", s))}
    for u in crowd:
        r = rows[u]
        x, fs = read_audio(speech[u])
        c, fs2 = read_audio(r["clean_path"])
        assert fs == fs2 and len(x) == len(c)
        if r["dirty"] == "0":
            assert np.array_equal(x, c)
            continue
        snr = _residual_snr(c, x)
        resid = x.astype(np.float64) - c
        spec = np.abs(np.fft.rfft(resid)) ** 2
        f = np.fft.rfftfreq(len(resid), 1 / fs)
        if r["kind"] in ("noise", "hum", "hiss"):
            assert abs(snr - float(r["snr_dB"])) < 0.3, (u, snr, r["snr_dB"])
        if r["kind"] == "hum":
            peak = f[np.argmax(spec)]
            assert abs(peak - float(r["hum_hz"])) < 2.0 or abs(peak - 2 * float(r["hum_hz"])) < 2.0
            assert spec[f < 400].sum() / spec.sum() > 0.9
        if r["kind"] == "hiss":
            assert spec[f > 2000].sum() > spec[f < 2000].sum()
        if r["kind"] == "codec":
            assert float(r["bitrate_kbps"]) > 0 and snr < 45


def test_wind_noise_is_low_frequency_at_every_rate(tiny_corpus):
    out, _, _ = tiny_corpus
    seen = set()
    for s in layout.SPLITS:
        for e in read_scp(out / layout.scp_name("wind_noise", s)):
            x, fs = read_audio(e.path)
            spec = np.abs(np.fft.rfft(x)) ** 2
            f = np.fft.rfftfreq(len(x), 1 / fs)
            assert spec[f < 500].sum() / spec.sum() > 0.8, (e.uid, fs)
            seen.add(fs)
    assert seen == set(SUPPORTED_RATES)


def test_summary_counts_what_is_on_disk(tiny_corpus):
    out, _, _ = tiny_corpus
    rows = list(csv.DictReader(open(out / "summary.csv")))
    info = tsv(out / "speech_info.tsv")
    sp = [r for r in rows if r["kind"] == "speech"]
    assert abs(sum(float(r["hours"]) for r in sp) - sum(float(r["duration_s"]) for r in info) / 3600) < 1e-3
    assert sum(int(r["count"]) for r in sp) == len(info)
    assert {r["group"] for r in sp} >= {"tts", "crowd"}
    assert {r["kind"] for r in rows} >= {"speech", "noise", "rir", "wind"}


def _digest(out: Path) -> dict[str, str]:
    """sha256 of every file, with the output folder's own path removed from text files."""
    res = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.suffix != ".flac":
                data = data.replace(str(out).encode(), b"<OUT>")
            res[str(p.relative_to(out))] = hashlib.sha256(data).hexdigest()
    return res


def test_same_seed_same_corpus_bit_for_bit(tiny_corpus, tmp_path):
    out, cfg, _ = tiny_corpus
    again = tmp_path / "corpus"
    build(CorpusSettings.from_config(cfg), again, threads=1)  # another worker count: the result must not depend on it
    a, b = _digest(out), _digest(again)
    assert a.keys() == b.keys()
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, f"files differ between two builds with the same seed: {diff[:5]}"


def test_other_seed_other_corpus(tiny_cache, tmp_path):
    cache, _ = tiny_cache
    cfg = tiny_config(cache, sources=["debian"], speech_minutes={"train": 0.3, "validation": 0.1, "test": 0.1},
                      noise={"per_type": {"train": 0, "validation": 0, "test": 0}},
                      wind={"count": {"train": 1, "validation": 0, "test": 0}})
    cfg["seed"] = 1
    build(CorpusSettings.from_config(cfg), tmp_path / "a", threads=2)
    rir0 = sorted((tmp_path / "a" / "audio" / "rir").rglob("*.flac"))[0]
    cfg["seed"] = 2
    build(CorpusSettings.from_config(cfg), tmp_path / "b", threads=2)
    rir1 = sorted((tmp_path / "b" / "audio" / "rir").rglob("*.flac"))[0]
    assert sf.read(rir0)[0].shape != sf.read(rir1)[0].shape or not np.array_equal(sf.read(rir0)[0], sf.read(rir1)[0])


def test_missing_debian_falls_back_to_tts_and_says_what_is_missing(tmp_path, caplog):
    empty = tmp_path / "empty-cache"
    cfg = tiny_config(empty, speech_minutes={"train": 0.6, "validation": 0.1, "test": 0.1})
    out = tmp_path / "corpus"
    with caplog.at_level("WARNING"):
        build(CorpusSettings.from_config(cfg), out, threads=2)
    sources = tsv(out / "sources.tsv")
    missing = {r["source"]: r["detail"] for r in sources if r["status"] == "missing"}
    assert "debian:asterisk-core-sounds-it-wav" in missing
    assert "downloads are disabled" in missing["debian:asterisk-core-sounds-it-wav"]
    assert "debian:asterisk-core-sounds-it-wav" in caplog.text
    assert any(r["status"] == "warning" and "speaker overlap" in r["detail"] for r in sources)
    info = tsv(out / "speech_info.tsv")
    assert {r["origin"] for r in info} == {"tts"}
    assert {int(r["fs"]) for r in info if r["split"] == "train"} == set(SUPPORTED_RATES)
    # babble falls back to TTS sentences that are in no speech list
    noise = tsv(out / "noise_info.tsv")
    assert "babble" in {r["type"] for r in noise}
    assert "real_sfx" not in {r["type"] for r in noise}
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert any(r["kind"] == "source" and "asterisk-core-sounds-it-wav" in r["group"] for r in summary)


def test_nothing_usable_fails_naming_what_is_missing(tmp_path):
    cfg = tiny_config(tmp_path / "empty-cache", sources=["debian"])
    with pytest.raises(CorpusError, match="no usable speech source.*asterisk-core-sounds-en-wav"):
        build(CorpusSettings.from_config(cfg), tmp_path / "corpus", threads=1)


def test_cli_runs_the_stage(tmp_path, tiny_cache, monkeypatch):
    import yaml

    from use_repro.cli import main

    cache, _ = tiny_cache
    cfg_path = tmp_path / "p.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "profile": "p", "cache_dir": str(cache),
        "corpus": {"offline": True, "sources": ["debian"],
                   "speech_minutes": {"train": 0.2, "validation": 0.05, "test": 0.1},
                   "noise": {"seconds": 1, "per_type": {"train": 1, "validation": 0, "test": 1}},
                   "rir": {"rooms": {"train": 1, "validation": 0, "test": 1}, "per_room": 1},
                   "wind": {"seconds": 1, "count": {"train": 1, "validation": 0, "test": 1}}}}))
    assert main(["corpus", "--config", str(cfg_path), "--out", str(tmp_path / "c"), "--threads", "1"]) == 0
    assert (tmp_path / "c" / "summary.csv").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"profile": "bad", "cache_dir": str(tmp_path / "none"),
                                   "corpus": {"offline": True, "sources": ["debian"]}}))
    assert main(["corpus", "--config", str(bad), "--out", str(tmp_path / "d")]) == 1


def test_snakemake_lint_is_clean_for_the_corpus_rule():
    import os
    import subprocess
    import sys

    from use_repro.config import REPO_ROOT

    bindir = Path(sys.executable).parent
    if not (bindir / "snakemake").exists():
        pytest.skip("snakemake is not installed in this environment")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = subprocess.run([str(bindir / "snakemake"), "--lint", "--config", "profile=tiny"], cwd=REPO_ROOT,
                       capture_output=True, text=True, env=env)
    text = r.stdout + r.stderr
    assert r.returncode == 0 or "Lints for" in text, text[-2000:]  # the workflow parsed and was linted
    assert "corpus.smk" not in text, text[text.find("corpus.smk") - 200:][:1500]
