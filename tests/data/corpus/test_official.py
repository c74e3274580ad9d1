"""kind=official: the challenge's prepared lists, checked line by line, in this project's layout."""
from __future__ import annotations

import pytest

from use_repro.config import load_config
from use_repro.data.corpus import layout
from use_repro.data.corpus.build import build
from use_repro.data.corpus.official import OfficialError
from use_repro.data.manifest import ManifestError, read_kv, read_scp
from use_repro.stage_settings import CorpusSettings


def _official_tree(root, make_wav):
    d = root / "speech_train_track1"
    d.mkdir(parents=True)
    a = make_wav("a.flac", 16000)
    b = make_wav("b.flac", 48000)
    # the challenge's wav.scp is `uid path`, the rate is in utt2fs
    (d / "wav.scp").write_text(f"cv_en_001 {a}\nears_p001_002 {b}\n")
    (d / "utt2fs").write_text("cv_en_001 16000\nears_p001_002 48000\n")
    (d / "utt2spk").write_text("cv_en_001 spk1\nears_p001_002 p001\n")
    (d / "text").write_text("cv_en_001 hello there\nears_p001_002 a read sentence\n")
    n = make_wav("n.flac", 24000)
    (root / "noise_train.scp").write_text(f"fsd50k_1 24000 {n}\n")
    (root / "tmp").mkdir()
    w = make_wav("w.flac", 8000)
    (root / "tmp" / "wind_noise_train.scp").write_text(f"wind_noise_8000hz_0 8000 {w}\n")
    r = make_wav("r.flac", 48000)
    (root / "rir_train.scp").write_text(f"dns5_rir_1 48000 {r}\n")
    return root


def test_official_lists_are_written_into_the_corpus_layout(tmp_path, make_wav):
    root = _official_tree(tmp_path / "data", make_wav)
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root)}})
    out = tmp_path / "corpus"
    rows = build(CorpusSettings.from_config(cfg), out)
    train = read_scp(out / "speech_train.scp", check_audio=True)
    assert [(e.uid, e.fs) for e in train] == [("cv_en_001", 16000), ("ears_p001_002", 48000)]
    assert read_kv(out / "text")["ears_p001_002"] == "a read sentence"
    assert read_kv(out / "utt2spk")["cv_en_001"] == "spk1"
    assert [e.uid for e in read_scp(out / "wind_noise_train.scp")] == ["wind_noise_8000hz_0"]
    assert read_scp(out / "speech_validation.scp") == []
    for name in layout.manifest_files():
        assert (out / name).exists(), name
    assert any(r["kind"] == "source" and "speech_validation" in r["group"] for r in rows)


def test_official_bad_lines_name_file_and_line(tmp_path, make_wav):
    root = _official_tree(tmp_path / "data", make_wav)
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root)}})
    (root / "noise_train.scp").write_text(f"fsd50k_1 24000 {tmp_path / 'n.flac'}\nfsd50k_2 24000 /no/such.flac\n")
    with pytest.raises(ManifestError, match=r"noise_train.scp line 2: /no/such.flac: no such file"):
        build(CorpusSettings.from_config(cfg), tmp_path / "corpus")
    (root / "noise_train.scp").write_text("fsd50k_1 24000\n")
    with pytest.raises(ManifestError, match=r"noise_train.scp line 1: expected 'uid fs path'"):
        build(CorpusSettings.from_config(cfg), tmp_path / "corpus")
    (root / "noise_train.scp").write_text(f"fsd50k_1 16000 {tmp_path / 'n.flac'}\n")
    with pytest.raises(ManifestError, match=r"line 1: .*file is 24000 Hz but the list says 16000 Hz"):
        build(CorpusSettings.from_config(cfg), tmp_path / "corpus")


def test_official_needs_its_folder(tmp_path):
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(tmp_path / "nowhere")}})
    with pytest.raises(OfficialError, match="corpus.official_dir"):
        build(CorpusSettings.from_config(cfg), tmp_path / "corpus")


def _bad_audio_tree(root, make_wav):
    """The official tree plus one noise line per kind of damaged audio."""
    import numpy as np
    import soundfile as sf

    root = _official_tree(root, make_wav)
    bad = root / "bad"
    bad.mkdir()
    x = (0.1 * np.sin(np.arange(24000) / 3)).astype(np.float32)
    nan, inf = x.copy(), x.copy()
    nan[1000], inf[2000] = np.nan, -np.inf
    sf.write(bad / "nan.wav", nan, 24000, subtype="FLOAT")
    sf.write(bad / "inf.wav", inf, 24000, subtype="FLOAT")
    sf.write(bad / "cut.flac", np.tile(x, 4), 24000)
    data = (bad / "cut.flac").read_bytes()
    (bad / "cut.flac").write_bytes(data[: len(data) // 2])
    sf.write(bad / "cutwav.wav", x, 24000)
    data = (bad / "cutwav.wav").read_bytes()
    (bad / "cutwav.wav").write_bytes(data[: len(data) // 2])
    (bad / "zero.flac").write_bytes(b"")
    (bad / "text.flac").write_text("not audio\n")
    good = make_wav("n.flac", 24000)
    lines = [f"fsd50k_1 24000 {good}"] + [f"bad_{p.stem} 24000 {p}" for p in sorted(bad.iterdir())]
    lines += ["only_two_fields 24000", f"fsd50k_1 24000 {good}", f"bad_rate 24k {good}"]
    (root / "noise_train.scp").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("threads", [1, 2])
def test_every_file_is_decoded_and_bad_ones_are_rejected_by_name(tmp_path, make_wav, threads):
    root = _bad_audio_tree(tmp_path / "data", make_wav)
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root)}})
    out = tmp_path / "corpus"
    with pytest.raises(ManifestError, match=r"corpus: 9 line\(s\) rejected .*rejects.tsv"):
        build(CorpusSettings.from_config(cfg), out, threads=threads)
    # the good lines are all written; the bad ones are named with list, line and reason
    assert [e.uid for e in read_scp(out / "noise_train.scp")] == ["fsd50k_1"]
    assert [e.uid for e in read_scp(out / "speech_train.scp")] == ["cv_en_001", "ears_p001_002"]
    rows = [line.split("\t") for line in (out / "rejects.tsv").read_text().splitlines()]
    assert rows[0] == ["list", "line", "uid", "path", "reason"]
    why = {r[2]: (int(r[1]), r[4]) for r in rows[1:]}
    assert why["bad_nan"][1].endswith("contains NaN samples (first at frame 1000)")
    assert why["bad_inf"][1].endswith("contains infinite samples (first at frame 2000)")
    assert "truncated" in why["bad_cut"][1] and "truncated" in why["bad_cutwav"][1]
    assert why["bad_zero"][1].endswith("empty file (0 bytes)")
    assert "not a sound file" in why["bad_text"][1]
    assert why["only_two_fields"][0] == 8 and "got 2 fields" in why["only_two_fields"][1]
    assert "duplicate uid 'fsd50k_1' (first on line 1)" in why["fsd50k_1"][1]
    assert "'24k' is not a number" in why["bad_rate"][1]


def test_a_rerun_decodes_only_new_or_changed_files(tmp_path, make_wav, monkeypatch):
    from use_repro.data.corpus import official

    root = _bad_audio_tree(tmp_path / "data", make_wav)
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root)}})
    out = tmp_path / "corpus"
    with pytest.raises(ManifestError):
        build(CorpusSettings.from_config(cfg), out)
    decoded = []
    real = official.check_audio
    monkeypatch.setattr(official, "check_audio", lambda p: decoded.append(p) or real(p))
    with pytest.raises(ManifestError, match=r"9 line\(s\) rejected"):
        build(CorpusSettings.from_config(cfg), out)
    assert decoded == []  # every verdict, good and bad, came from audio_check.json
    (root / "bad" / "zero.flac").unlink()
    make_wav("data/bad/zero.flac", 24000)  # repaired in place
    with pytest.raises(ManifestError, match=r"8 line\(s\) rejected"):
        build(CorpusSettings.from_config(cfg), out)
    assert decoded == [str(root / "bad" / "zero.flac")]
    assert "bad_zero" in [e.uid for e in read_scp(out / "noise_train.scp")]


def _one_bad_file_tree(root, make_wav, good: int):
    """The official tree whose noise list holds `good` decodable files and one truncated FLAC."""
    root = _official_tree(root, make_wav)
    lines = [f"fsd50k_{k} 24000 {make_wav(f'n{k}.flac', 24000, seconds=0.1)}" for k in range(good)]
    import numpy as np
    import soundfile as sf

    bad = root / "cut.flac"
    sf.write(bad, 0.1 * np.sin(np.arange(96000) / 3), 24000)
    bad.write_bytes(bad.read_bytes()[:2000])
    lines.insert(good // 2, f"fsd50k_cut 24000 {bad}")
    (root / "noise_train.scp").write_text("\n".join(lines) + "\n")
    return root


def test_a_bad_file_within_max_reject_fraction_is_left_out_and_the_build_goes_on(tmp_path, make_wav, caplog):
    # 1 bad line in 20 (5 %) against a limit of 10 %: written without it, named in rejects.tsv
    root = _one_bad_file_tree(tmp_path / "data", make_wav, good=19)
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root), "max_reject_fraction": 0.1}})
    out = tmp_path / "corpus"
    build(CorpusSettings.from_config(cfg), out)
    assert [e.uid for e in read_scp(out / "noise_train.scp")] == [f"fsd50k_{k}" for k in range(19)]
    rows = [line.split("\t") for line in (out / "rejects.tsv").read_text().splitlines()]
    assert [(r[1], r[2]) for r in rows[1:]] == [("10", "fsd50k_cut")] and "truncated" in rows[1][4]
    assert "noise_train.scp: 19 of 20 lines kept, 1 rejected (5.0%, within the limit " \
           "corpus.max_reject_fraction = 0.1)" in caplog.text
    assert (out / "summary.csv").exists()
    sources = (out / "sources.tsv").read_text()
    assert "official:noise_train.scp\trejects\t1 line(s) rejected" in sources


def test_a_bad_file_above_max_reject_fraction_fails_and_its_rejects_file_stays(tmp_path, make_wav, caplog):
    # 1 bad line in 20 (5 %) against the default 1 %: the build fails, the rejects are on disk
    root = _one_bad_file_tree(tmp_path / "data", make_wav, good=19)
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root)}})
    assert cfg["corpus"]["max_reject_fraction"] == 0.01
    out = tmp_path / "corpus"
    with pytest.raises(ManifestError, match=r"1 line\(s\) rejected .*above corpus.max_reject_fraction = 0.01 "
                                            r"in noise_train.scp; .*noise_train.scp line 10: .*truncated"):
        build(CorpusSettings.from_config(cfg), out)
    assert "1 rejected (5.0%, above the limit corpus.max_reject_fraction = 0.01)" in caplog.text
    assert [r.split("\t")[2] for r in (out / "rejects.tsv").read_text().splitlines()[1:]] == ["fsd50k_cut"]
    # the limit is per list: the same line among 200 is within 1 %
    root2 = _one_bad_file_tree(tmp_path / "data2", make_wav, good=199)
    build(CorpusSettings.from_config(load_config("urgent2025", overrides={"corpus": {"official_dir": str(root2)}})),
          tmp_path / "corpus2")
    assert len(read_scp(tmp_path / "corpus2" / "noise_train.scp")) == 199
    # a list that loses every line fails at any limit
    (root2 / "noise_train.scp").write_text(f"only 24000 {root2 / 'cut.flac'}\n")
    cfg3 = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root2), "max_reject_fraction": 1}})
    with pytest.raises(ManifestError, match="above corpus.max_reject_fraction = 1 in noise_train.scp"):
        build(CorpusSettings.from_config(cfg3), tmp_path / "corpus3")


def test_max_reject_fraction_arrived_without_changing_a_corpus_digest():
    """The key is new: at its default it must leave every profile's corpus settings file name
    (and so every corpus built before it) as it was."""
    from use_repro.config import PROFILES, settings_digest

    for name in PROFILES:
        cfg = load_config(name)
        before = {**cfg, "corpus": {k: v for k, v in cfg["corpus"].items() if k != "max_reject_fraction"}}
        assert settings_digest(cfg, ["seed", "corpus"]) == settings_digest(before, ["seed", "corpus"]), name
    cfg = load_config("small")
    assert settings_digest(cfg, ["seed", "corpus"])[:16] == "14fbe8d679a1c462"  # results/small/settings/
    changed = {**cfg, "corpus": {**cfg["corpus"], "max_reject_fraction": 0}}
    assert settings_digest(changed, ["seed", "corpus"]) != settings_digest(cfg, ["seed", "corpus"])
