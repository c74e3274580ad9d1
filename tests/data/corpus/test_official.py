"""kind=official: the challenge's prepared lists, checked line by line, in this project's layout."""
from __future__ import annotations

import pytest

from use_repro.config import load_config
from use_repro.data.corpus import layout
from use_repro.data.corpus.build import build
from use_repro.data.corpus.official import OfficialError
from use_repro.data.manifest import ManifestError, read_kv, read_scp


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
    rows = build(cfg, out)
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
        build(cfg, tmp_path / "corpus")
    (root / "noise_train.scp").write_text("fsd50k_1 24000\n")
    with pytest.raises(ManifestError, match=r"noise_train.scp line 1: expected 'uid fs path'"):
        build(cfg, tmp_path / "corpus")
    (root / "noise_train.scp").write_text(f"fsd50k_1 16000 {tmp_path / 'n.flac'}\n")
    with pytest.raises(ManifestError, match=r"line 1: .*file is 24000 Hz but the list says 16000 Hz"):
        build(cfg, tmp_path / "corpus")


def test_official_needs_its_folder(tmp_path):
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(tmp_path / "nowhere")}})
    with pytest.raises(OfficialError, match="corpus.official_dir"):
        build(cfg, tmp_path / "corpus")
