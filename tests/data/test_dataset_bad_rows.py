"""Training rows with bad audio: found before step 0, recorded in the run folder, never fatal."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from use_repro.audio.io import write_audio
from use_repro.data import audiocheck
from use_repro.data.dataset import (BEFORE_START, SKIP_RECORD, Draw, MetaDataset, checked_rows, load_rows)
from use_repro.data.manifest import write_meta
from use_repro.train.arguments import TrainRun


def _pair(root, uid, x, fs, clean=None, **kw):
    noisy = root / "noisy" / f"{uid}.wav"
    noisy.parent.mkdir(parents=True, exist_ok=True)
    sf.write(noisy, x, fs, **kw)
    target = write_audio(root / "clean" / f"{uid}.flac", np.zeros(len(x)) if clean is None else clean, fs)
    return {"id": uid, "speech_uid": f"s_{uid}", "fs": str(fs), "noisy_path": str(noisy), "clean_path": str(target)}


def _tone(fs, seconds=0.3):
    return (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(fs * seconds)) / fs)).astype(np.float32)


@pytest.fixture
def bad_meta(tmp_path):
    """Two good rows and one row per class of bad audio; returns (meta.tsv, {id: expected reason})."""
    rows = [_pair(tmp_path, "good1", _tone(8000), 8000), _pair(tmp_path, "good2", _tone(16000), 16000)]
    nan = _tone(8000)
    nan[50] = np.nan
    rows.append(_pair(tmp_path, "nan", nan, 8000, subtype="FLOAT"))  # FLAC is integer PCM: NaN lives in float WAV
    inf = _tone(8000)
    inf[7] = np.inf
    rows.append(_pair(tmp_path, "inf", inf, 8000, subtype="FLOAT"))
    rows.append({**_pair(tmp_path, "missing", _tone(8000), 8000), "noisy_path": str(tmp_path / "gone.wav")})
    r = _pair(tmp_path, "empty", _tone(8000), 8000)
    open(r["noisy_path"], "wb").close()
    rows.append(r)
    r = _pair(tmp_path, "text", _tone(8000), 8000)
    open(r["noisy_path"], "w").write("not audio at all\n")
    rows.append(r)
    for uid, seconds in (("cut", 3.0), ("cut_short", 0.3)):  # FLAC targets cut in half
        r = _pair(tmp_path, uid, _tone(8000, seconds), 8000, clean=_tone(8000, seconds))
        data = open(r["clean_path"], "rb").read()
        open(r["clean_path"], "wb").write(data[: len(data) // 2])
        rows.append(r)
    rows.append(_pair(tmp_path, "one", np.array([0.1], np.float32), 8000, clean=np.array([0.1])))
    rows.append(_pair(tmp_path, "rate", _tone(11111), 11111))
    rows.append(_pair(tmp_path, "low", _tone(4000), 4000))
    rows.append({**_pair(tmp_path, "stereo", np.stack([_tone(8000)] * 2, 1), 8000)})
    rows.append({**_pair(tmp_path, "liar", _tone(8000), 8000), "fs": "16000"})
    rows.append({**_pair(tmp_path, "nonum", _tone(8000), 8000), "fs": "fast"})
    write_meta(tmp_path / "meta.tsv", rows)
    with open(tmp_path / "meta.tsv", "a") as f:
        f.write("broken\tline\n")  # a malformed line
    reasons = {"nan": "contains NaN samples (first at frame 50)", "inf": "contains infinite samples", "missing": "no such file",
               "empty": "empty file", "text": "not a sound file", "cut": "truncated or corrupt after", "cut_short": "truncated", "one": "shorter than one STFT window",
               "rate": "not an integer", "low": "outside the 8000-48000 Hz", "stereo": "2 channels",
               "liar": "file is 8000 Hz but meta.tsv says 16000 Hz", "nonum": "'fast' is not a number",
               "meta.tsv line 17": "2 fields, header has"}
    return tmp_path / "meta.tsv", reasons


def _load(meta, run):
    rejected = []
    rows = load_rows(meta, "early", rejected=rejected)
    return checked_rows(rows, run, meta, rejected=rejected)


def test_every_bad_row_is_named_before_step_0_and_the_good_ones_stay(bad_meta, tmp_path):
    meta, reasons = bad_meta
    run = tmp_path / "run"
    run.mkdir()
    rows = _load(meta, run)
    assert [r["id"] for r in rows] == ["good1", "good2"]
    lines = (run / SKIP_RECORD).read_text().splitlines()
    assert lines[0] == "id\twhen\treason"
    got = {line.split("\t")[0]: line.split("\t")[2] for line in lines[1:]}
    assert set(got) == set(reasons)
    for uid, why in reasons.items():
        assert why in got[uid], (uid, got[uid])
    assert all(line.split("\t")[1] == BEFORE_START for line in lines[1:])


def test_a_rerun_answers_from_the_cache_and_rechecks_a_changed_file(bad_meta, tmp_path, monkeypatch):
    meta, _ = bad_meta
    run = tmp_path / "run"
    run.mkdir()
    _load(meta, run)
    calls = []
    real = audiocheck.check_audio
    monkeypatch.setattr(audiocheck, "check_audio", lambda p: calls.append(str(p)) or real(p))
    assert [r["id"] for r in _load(meta, run)] == ["good1", "good2"]
    assert calls == []  # every verdict came from the cache
    fixed = tmp_path / "noisy" / "nan.wav"
    sf.write(fixed, _tone(8000), 8000, subtype="FLOAT")  # repaired: new size/mtime
    assert [r["id"] for r in _load(meta, run)] == ["good1", "good2", "nan"]
    # the repaired file, and its target, unread so far (the bad noisy file ended that row's check)
    assert calls == [str(fixed), str(tmp_path / "clean" / "nan.flac")]


def test_no_usable_row_is_an_error_naming_the_first_reason(tmp_path):
    rows = [_pair(tmp_path, "gone", _tone(8000), 8000)]
    rows[0]["noisy_path"] = str(tmp_path / "nothing.wav")
    write_meta(tmp_path / "meta.tsv", rows)
    with pytest.raises(ValueError, match=r"no row can be trained on.*gone: .*nothing.wav: no such file"):
        _load(tmp_path / "meta.tsv", tmp_path)


def test_a_row_that_fails_when_drawn_is_replaced_the_same_way_every_time(tmp_path):
    rows = [_pair(tmp_path, f"u{i}", _tone(8000) * (i + 1), 8000) for i in range(4)]
    write_meta(tmp_path / "meta.tsv", rows)
    run = tmp_path / "run"
    run.mkdir()
    ok = _load(tmp_path / "meta.tsv", run)
    (tmp_path / "noisy" / "u2.wav").write_bytes(b"")  # goes bad after the check, mid-run
    ds = MetaDataset(ok, segment_seconds=0.1, skip_record=run / SKIP_RECORD)
    a, b = ds[Draw(2, 77)], ds[Draw(2, 77)]
    assert a["id"] != "u2" and a["id"] == b["id"]
    assert np.array_equal(a["noisy"].numpy(), b["noisy"].numpy())
    fresh = MetaDataset(ok, segment_seconds=0.1)  # a resumed process: the same substitute
    assert fresh[Draw(2, 77)]["id"] == a["id"]
    lines = (run / SKIP_RECORD).read_text().splitlines()
    assert [line.split("\t")[0] for line in lines[1:]] == ["u2", "u2"]
    assert "empty file" in lines[1]
    # the next check before step 0 keeps these records and adds the row to its own
    again = _load(tmp_path / "meta.tsv", run)
    assert [r["id"] for r in again] == ["u0", "u1", "u3"]
    whens = [line.split("\t")[1] for line in (run / SKIP_RECORD).read_text().splitlines()[1:]]
    assert whens.count(BEFORE_START) == 1 and len(whens) == 3


def test_training_runs_past_a_nan_row_and_a_missing_file_and_resumes(tmp_path):
    """Every row drawn: without the check, the NaN row kills the run at its first draw."""
    from use_repro.cli import stage_parser
    from use_repro.data.manifest import read_meta
    from use_repro.train import regression

    from ..train.conftest import make_meta, write_profile

    meta = make_meta(tmp_path / "data", n=3)
    rows = read_meta(meta)
    nan = _tone(8000, 0.5)
    nan[100] = np.nan
    bad_nan = _pair(tmp_path / "data", "fileid_nan", nan, 8000, subtype="FLOAT")
    bad_gone = {**_pair(tmp_path / "data", "fileid_gone", _tone(8000, 0.5), 8000),
                "noisy_path": str(tmp_path / "data" / "deleted.flac")}
    for r in (bad_nan, bad_gone):
        rows.append({**rows[0], **r, "clean_shifted_path": r["clean_path"]})
    write_meta(meta, rows)
    cfg = write_profile(tmp_path / "tiny.yaml", checkpoint_every=3, validate_every=0, log_every=3)
    parser, _ = stage_parser("train")
    out = tmp_path / "run"

    def train(steps):
        return regression.train(TrainRun.from_namespace(parser.parse_args(list(map(str, [
            "regression", "--config", cfg, "--train-meta", meta, "--target", "shifted",
            "--steps", steps, "--out", out, "--device", "cpu"])))))

    assert train(4).step == 4  # 4 draws of a 5-row epoch: at least one bad row is drawn
    skipped = (out / SKIP_RECORD).read_text().splitlines()[1:]
    assert sorted(line.split("\t")[0] for line in skipped) == ["fileid_gone", "fileid_nan"]
    assert "contains NaN samples" in next(x for x in skipped if x.startswith("fileid_nan"))
    assert train(8).step == 8  # resumed from step 3's checkpoint, through the same draws
    assert sorted(line.split("\t")[0] for line in (out / SKIP_RECORD).read_text().splitlines()[1:]) == [
        "fileid_gone", "fileid_nan"]


def test_on_the_fly_simulation_replaces_a_speech_file_that_goes_bad(tmp_path):
    from tests.data.sim_fixtures import write_corpus
    from use_repro.cli import stage_parser
    from use_repro.train import setup

    from ..train.conftest import write_profile

    corpus = write_corpus(tmp_path / "corpus", seconds=0.6, rates=(8000, 16000), n_noise=1)
    cfg = write_profile(tmp_path / "tiny.yaml", segment_seconds=0.3)
    parser, _ = stage_parser("train")
    args = parser.parse_args(list(map(str, ["regression", "--config", cfg, "--simulate", "--corpus-dir", corpus,
                                            "--target", "early", "--steps", 1, "--out", tmp_path / "run",
                                            "--device", "cpu"])))
    args = TrainRun.from_namespace(args)
    ds = setup.training_dataset(args, setup.context(args, "regression", "early"))
    victim = ds.speech[1]
    open(victim.path, "wb").write(b"fLaC but nothing after")  # damaged after the run started
    a, b = ds[Draw(1, 5)], ds[Draw(1, 5)]
    assert a["id"] == b["id"] and np.array_equal(a["noisy"].numpy(), b["noisy"].numpy())
    lines = (tmp_path / "run" / SKIP_RECORD).read_text().splitlines()
    assert lines[0] == "id\twhen\treason" and len(lines) == 3  # one record per failed draw
    assert all(line.startswith(f"{victim.uid}\trendered at draw seed 5\tno renderable row") for line in lines[1:])
