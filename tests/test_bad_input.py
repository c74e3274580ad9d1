"""The bad-input matrix: every class of bad input, at every stage that reads audio lists.

Classes: missing / empty / non-audio / NaN / Inf / truncated / 1-sample / unsupported rate /
stereo / malformed line / bad config key / bad config value. Each stage must name the bad item
with a clear reason, finish the rest of its batch, and lose nothing; what "finish" means is the
stage's own contract, asserted here:

- corpus (official lists): bad lines rejected by list and line into rejects.tsv, the rest
  written, then an error with a summary (exit 1). Rates and channel counts are the renderer's
  business (it resamples and rejects short speech), so those classes pass this stage.
- training: bad rows skipped before step 0 and named in skipped_rows.tsv; training goes on.
- enhance: bad files are failures named in enhance_failures.tsv, the rest is enhanced, exit 1;
  unusual rates and stereo are enhanced (resampled / per channel) by design.
- evaluate: a bad estimate gives a row whose `error` names the reason, every other row is
  scored, and the run exits 1 listing the undecodable files; a malformed list line refuses the
  run naming the line.
"""
from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from use_repro.audio.io import write_audio
from use_repro.cli import main
from use_repro.stage_settings import CorpusSettings

from .conftest import tone
from .train.conftest import one_thread  # noqa: F401 (autouse: one torch thread)

AUDIO_CLASSES = ("missing", "empty", "non_audio", "nan", "inf", "truncated", "one_sample",
                 "unsupported_rate", "stereo")
FS = 16000


def make_bad(kind: str, folder, name: str = "bad"):
    """A file of class `kind` in `folder` -> (path, its nominal rate, reason fragment or None)."""
    folder.mkdir(parents=True, exist_ok=True)
    x = tone(FS, 0.5)
    if kind == "missing":
        return folder / f"{name}.wav", FS, "no such file"
    p = folder / f"{name}.wav"
    if kind == "empty":
        p.write_bytes(b"")
        return p, FS, "empty file"
    if kind == "non_audio":
        p.write_text("id\tvalue\nthis is a table, not audio\n")
        return p, FS, "not a sound file"
    if kind in ("nan", "inf"):
        x = x.copy()
        x[123] = np.nan if kind == "nan" else np.inf
        sf.write(p, x, FS, subtype="FLOAT")
        return p, FS, "contains NaN samples" if kind == "nan" else "contains infinite samples"
    if kind == "truncated":
        sf.write(p, x, FS)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p, FS, "truncated"
    if kind == "one_sample":
        sf.write(p, np.array([0.25], np.float32), FS)
        return p, FS, "shorter than one"
    if kind == "unsupported_rate":
        fs = 11111  # not a multiple of 25 Hz: the SFI STFT has no window for it
        sf.write(p, tone(fs, 0.5), fs)
        return p, fs, "not an integer"
    if kind == "stereo":
        sf.write(p, np.stack([x, 0.5 * x], 1), FS)
        return p, FS, "2 channels"
    raise ValueError(kind)


# --- enhance ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from use_repro.config import load_config
    from use_repro.models.build import build_regression
    from use_repro.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("bad") / "final.pt", build_regression(load_config("tiny")))


def _enhance(ckpt, inp, out, *extra):
    return main(["enhance", "--checkpoint", str(ckpt), "--in", str(inp), "--out", str(out), "--device", "cpu",
                 *map(str, extra)])


@pytest.mark.parametrize("kind", AUDIO_CLASSES + ("malformed_line",))
def test_enhance(kind, tmp_path, ckpt, caplog):
    d = tmp_path / "in"
    good = write_audio(d / "good.flac", tone(FS, 0.5), FS)
    if kind == "malformed_line":
        # ("bad 16000" would be a two-column 'uid path' line naming a file "16000")
        lines, bad_id, reason = ["bad 16000 a b"], "list.scp line 2", "expected 'uid path' (ESPnet/Kaldi wav.scp) or 'uid fs path'"
    else:
        path, fs, reason = make_bad(kind, d)
        lines, bad_id = [f"bad {fs} {path}"], "bad"
    (d / "list.scp").write_text(f"good {FS} {good}\n" + "\n".join(lines) + "\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        status = _enhance(ckpt, d / "list.scp", out)
    done = sorted(line.split()[0] for line in (out / "enhanced.scp").read_text().splitlines())
    failures = (out / "enhance_failures.tsv").read_text().splitlines()[1:]
    if kind in ("unsupported_rate", "stereo"):  # enhanced by design: resampled / channel by channel
        assert status == 0 and done == ["bad", "good"] and failures == []
        i, o = sf.info(str(path)), sf.info(str(out / "bad.wav"))
        assert (o.samplerate, o.frames, o.channels) == (i.samplerate, i.frames, i.channels)
        return
    assert status == 1 and done == ["good"]
    assert len(failures) == 1 and failures[0].startswith(f"{bad_id}\t") and reason in failures[0]
    assert "enhance: 1 of 2 done, 1 failed" in caplog.text  # the summary at the end


@pytest.mark.parametrize("kind", ["bad_config_key", "bad_config_value"])
def test_enhance_bad_arguments(kind, tmp_path, ckpt, caplog):
    write_audio(tmp_path / "in" / "good.flac", tone(FS, 0.5), FS)
    if kind == "bad_config_key":  # an option that does not exist
        with pytest.raises(SystemExit) as e:
            _enhance(ckpt, tmp_path / "in", tmp_path / "out", "--chunk-secs", 3)
        assert e.value.code == 2
        return
    not_a_ckpt = tmp_path / "final.pt"
    not_a_ckpt.write_text("not a checkpoint")
    with caplog.at_level(logging.ERROR):
        assert _enhance(not_a_ckpt, tmp_path / "in", tmp_path / "out") == 2
    assert f"--checkpoint {not_a_ckpt}: not a checkpoint" in caplog.text
    with pytest.raises(SystemExit) as e:
        _enhance(ckpt, tmp_path / "in", tmp_path / "out", "--chunk-seconds", "long")
    assert e.value.code == 2


# --- training ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", AUDIO_CLASSES + ("malformed_line",))
def test_training_rows(kind, tmp_path):
    from use_repro.data.dataset import SKIP_RECORD, checked_rows, load_rows
    from use_repro.data.manifest import write_meta

    d = tmp_path / "data"
    target = write_audio(d / "clean.flac", tone(FS, 0.5), FS)
    rows = [{"id": "good", "speech_uid": "s1", "fs": FS, "noisy_path": str(write_audio(d / "good.flac", tone(FS, 0.5), FS)),
             "clean_path": str(target)}]
    if kind != "malformed_line":
        path, fs, reason = make_bad(kind, d)
        clean = target if fs == FS and kind != "one_sample" else path  # the pair's lengths match
        rows.append({"id": "bad", "speech_uid": "s2", "fs": fs, "noisy_path": str(path), "clean_path": str(clean)})
        bad_id = "bad"
    write_meta(d / "meta.tsv", rows)
    if kind == "malformed_line":
        with open(d / "meta.tsv", "a") as f:
            f.write("bad\tonly\tthree\n")
        bad_id, reason = "meta.tsv line 3", "3 fields, header has"
    run = tmp_path / "run"
    run.mkdir()
    rejected = []
    kept = checked_rows(load_rows(d / "meta.tsv", "early", rejected=rejected), run, d / "meta.tsv", rejected=rejected)
    assert [r["id"] for r in kept] == ["good"]
    lines = (run / SKIP_RECORD).read_text().splitlines()[1:]
    assert len(lines) == 1 and lines[0].startswith(f"{bad_id}\t") and reason in lines[0], lines


@pytest.mark.parametrize("override, key", [({"train": {"stepz": 3}}, "train.stepz: unknown key"),
                                           ({"train": {"lr": "fast"}}, "train.lr: 'fast' is not of type")])
def test_training_bad_config(override, key):
    from use_repro.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=key):
        load_config("tiny", overrides=override)


# --- corpus (official lists) ------------------------------------------------------------------

@pytest.mark.parametrize("kind", AUDIO_CLASSES + ("malformed_line",))
def test_corpus(kind, tmp_path):
    from use_repro.config import load_config
    from use_repro.data.corpus.build import build
    from use_repro.data.manifest import ManifestError, read_scp

    root = tmp_path / "official"
    good = write_audio(root / "a.flac", tone(FS, 0.5), FS)
    if kind == "malformed_line":
        line, bad_id, reason = "bad 16000", "bad", "expected 'uid fs path'"
    else:
        path, fs, reason = make_bad(kind, root)
        line, bad_id = f"bad {fs} {path}", "bad"
    (root / "speech_train.scp").write_text(f"good {FS} {good}\n{line}\n")
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(root)}})
    out = tmp_path / "corpus"
    if kind in ("one_sample", "unsupported_rate", "stereo"):  # whole, finite audio: the renderer's call
        build(CorpusSettings.from_config(cfg), out)
        assert [e.uid for e in read_scp(out / "speech_train.scp")] == ["good", "bad"]
        return
    with pytest.raises(ManifestError, match=r"corpus: 1 line\(s\) rejected"):
        build(CorpusSettings.from_config(cfg), out)
    assert [e.uid for e in read_scp(out / "speech_train.scp")] == ["good"]
    rejects = (out / "rejects.tsv").read_text().splitlines()[1:]
    assert len(rejects) == 1
    lst, lineno, uid, _, why = rejects[0].split("\t")
    assert (lst.endswith("speech_train.scp"), lineno, uid) == (True, "2", bad_id) and reason in why


@pytest.mark.parametrize("kind", ["bad_config_key", "bad_config_value"])
def test_corpus_bad_config(kind, tmp_path):
    from use_repro.config import ConfigError, load_config
    from use_repro.data.corpus.build import build
    from use_repro.data.corpus.official import OfficialError

    if kind == "bad_config_key":
        with pytest.raises(ConfigError, match="corpus.official_folder: unknown key"):
            load_config("urgent2025", overrides={"corpus": {"official_folder": str(tmp_path)}})
        return
    cfg = load_config("urgent2025", overrides={"corpus": {"official_dir": str(tmp_path / "nowhere")}})
    with pytest.raises(OfficialError, match="corpus.official_dir: .*nowhere.* is not a folder"):
        build(CorpusSettings.from_config(cfg), tmp_path / "corpus")


# --- evaluate (input reading) -----------------------------------------------------------------

@pytest.mark.parametrize("kind", AUDIO_CLASSES)
def test_evaluate_estimates(kind, tmp_path):
    from use_repro.metrics import evaluate as E

    path, _, reason = make_bad(kind, tmp_path / "est")
    row = E.score_item(E.Item("bad", str(path), None, None, None))
    if kind in ("one_sample", "unsupported_rate", "stereo"):  # readable audio: scored (per metric)
        assert row.get("error", "") == "" and row["fs"] == sf.info(str(path)).samplerate
        return
    assert row["error"].startswith("estimate: ") and reason in row["error"]


def test_evaluate_malformed_line_and_bad_metric(tmp_path, capsys):
    from use_repro.metrics.evaluate import read_audio_list

    (tmp_path / "est.scp").write_text(f"a {FS} {tmp_path / 'a.flac'}\nb\n")
    with pytest.raises(ValueError, match=r"est.scp line 2: expected 'uid fs path' or 'uid path'"):
        read_audio_list(tmp_path / "est.scp")
    write_audio(tmp_path / "est" / "a.flac", tone(FS, 0.5), FS)
    assert main(["evaluate", "--est", str(tmp_path / "est"), "--out", str(tmp_path / "x.csv"), "--metrics", "PESQQ"]) == 2
    assert re.search(r"use-repro evaluate: unknown metric.*PESQQ", capsys.readouterr().err)


def test_evaluate_scores_the_rest_and_exits_non_zero_naming_bad_inputs(tmp_path, capsys):
    import pandas as pd

    est = tmp_path / "est"
    write_audio(est / "good.flac", tone(FS, 0.5), FS)
    write_audio(est / "quiet.flac", np.zeros(FS // 2), FS)  # a silent system output: a failed row, not bad input
    bad, _, _ = make_bad("nan", est)
    out = tmp_path / "x.csv"
    rc = main(["evaluate", "--est", str(est), "--out", str(out), "--metrics", "SDR"])
    err = capsys.readouterr().err
    assert rc == 1 and "1 of 3 input file(s) could not be used" in err and str(bad) in err, err
    assert "quiet" not in err
    rows = pd.read_csv(out).set_index("id")
    assert sorted(rows.index) == ["bad", "good", "quiet"]
    assert rows.loc["good", "error"] != rows.loc["good", "error"]  # NaN: no error
    assert "silent" in rows.loc["quiet", "error"]
    # without the bad file the same run succeeds
    bad.unlink()
    assert main(["evaluate", "--est", str(est), "--out", str(tmp_path / "y.csv"), "--metrics", "SDR"]) == 0
