import csv
import itertools

import numpy as np
import pytest
import torch

from tests.quality.conftest import babble_voice
from use_repro.audio.io import write_audio
from use_repro.batch import Failures
from use_repro.data.manifest import ScpEntry, read_scp
from use_repro.quality.filtering import (ScoreRow, Threshold, auc_report, filter_sweep, read_scores, resolve_mode,
                                         roc_auc, score_entries, select, source_resolver, write_scores)
from use_repro.quality.vqscore import VQScoreArgs, VQScoreModel, l2norm


def _rows(n=200, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.4, 0.9, n)
    if ties:
        scores = np.round(scores, 1)
    durations = rng.uniform(0.5, 12.0, n)
    sources = rng.choice(["crowd", "tts", "asterisk"], n)
    return [ScoreRow(f"u{i:04d}", str(sources[i]), float(scores[i]), float(durations[i])) for i in range(n)]


@pytest.mark.parametrize("keep", [1.0, 0.995, 0.5, 0.25, 0.0])
@pytest.mark.parametrize("ties", [False, True])
def test_keep_fraction_of_utterances_is_exact(keep, ties):
    rows = _rows(ties=ties)
    kept, cut = select(rows, Threshold("t", keep=keep), "keep", "utterances")
    assert len(kept) == round(keep * len(rows))
    # the kept ones are the best-scoring ones
    if kept:
        assert min(r.score for r in rows if r.uid in kept) == cut
        assert all(r.score <= cut for r in rows if r.uid not in kept)


@pytest.mark.parametrize("keep", [1.0, 0.995, 0.5, 0.25, 0.0])
def test_keep_fraction_of_hours_is_the_nearest_cut(keep):
    rows = _rows()
    total = sum(r.duration for r in rows)
    kept, cut = select(rows, Threshold("t", keep=keep), "keep", "hours")
    ranked = sorted(rows, key=lambda r: (-r.score, r.uid))
    n = len(kept)
    assert {r.uid for r in ranked[:n]} == kept  # a prefix of the ranking
    hours = sum(r.duration for r in ranked[:n])
    # no other cut of the ranking comes nearer the asked share of the hours
    best = min(abs(sum(r.duration for r in ranked[:m]) - keep * total) for m in range(len(rows) + 1))
    assert abs(hours - keep * total) == pytest.approx(best)
    if 0 < n < len(rows):
        assert abs(hours - keep * total) <= max(ranked[n - 1].duration, ranked[n].duration) / 2 + 1e-9
    assert n == {1.0: len(rows), 0.0: 0}.get(keep, n)


def test_absolute_threshold_drops_scores_below_it():
    rows = _rows()
    kept, cut = select(rows, Threshold("vq065", score=0.65), "score")
    assert kept == {r.uid for r in rows if r.score >= 0.65}
    assert cut >= 0.65


def test_mode_auto_follows_the_estimator():
    assert resolve_mode("auto", "released") == "score"
    assert resolve_mode("auto", "trained") == "keep"
    assert resolve_mode("score", "trained") == "score"
    with pytest.raises(ValueError):
        resolve_mode("median", "trained")


def test_filter_sweep_writes_lists_and_datasize(tmp_path):
    rows = _rows(60)
    entries = [ScpEntry(r.uid, 16000, f"/x/{r.uid}.flac") for r in rows]
    ths = [Threshold("vq050", 0.50, 1.0), Threshold("vq065", 0.65, 0.995), Threshold("vq072", 0.72, 0.25)]
    table = filter_sweep(rows, entries, ths, "keep", tmp_path, keep_unit="utterances")
    for th, row in zip(ths, table):
        lst = read_scp(tmp_path / "filtered" / f"speech_train.{th.name}.scp")
        assert len(lst) == round(th.keep * 60) == row["utterances"]
        # the original order is kept
        order = [e.uid for e in entries]
        assert [e.uid for e in lst] == sorted((e.uid for e in lst), key=order.index)
    with open(tmp_path / "datasize.csv") as f:
        got = list(csv.DictReader(f))
    assert [g["threshold"] for g in got] == ["vq050", "vq065", "vq072"]
    first = got[0]
    assert float(first["hours"]) == pytest.approx(sum(r.duration for r in rows) / 3600, abs=1e-5)
    assert float(first["hours_fraction"]) == pytest.approx(1.0)
    for src in ("crowd", "tts", "asterisk"):
        assert int(first[f"{src}_utterances"]) == sum(r.source == src for r in rows)
    assert sum(int(got[2][f"{s}_utterances"]) for s in ("crowd", "tts", "asterisk")) == int(got[2]["utterances"])


def test_one_list_per_job_equals_the_whole_sweep(tmp_path):
    """The DAG writes each threshold's list in its own job (`--only-list`) and datasize.csv in
    another (`--only-datasize`): the files equal one sweep's, byte for byte, and a job writes
    nothing else."""
    rows = _rows(60)
    entries = [ScpEntry(r.uid, 16000, f"/x/{r.uid}.flac") for r in rows]
    ths = [Threshold("vq050", 0.50, 1.0), Threshold("vq065", 0.65, 0.995), Threshold("vq072", 0.72, 0.25)]
    whole, split = tmp_path / "whole", tmp_path / "split"
    table = filter_sweep(rows, entries, ths, "keep", whole)
    for th in ths:
        one = filter_sweep(rows, entries, ths, "keep", split / th.name, lists=[th.name], datasize=False)
        assert [r["threshold"] for r in one] == [th.name]
        assert sorted(p.name for p in (split / th.name).rglob("*") if p.is_file()) == [f"speech_train.{th.name}.scp"]
        name = f"filtered/speech_train.{th.name}.scp"
        assert (split / th.name / name).read_bytes() == (whole / name).read_bytes()
    assert filter_sweep(rows, entries, ths, "keep", split / "table", lists=[]) == table
    assert [p.name for p in (split / "table").rglob("*") if p.is_file()] == ["datasize.csv"]
    assert (split / "table" / "datasize.csv").read_bytes() == (whole / "datasize.csv").read_bytes()
    with pytest.raises(ValueError, match="vq099"):
        filter_sweep(rows, entries, ths, "keep", split, lists=["vq099"], datasize=False)


def test_filter_refuses_unscored_entries(tmp_path):
    rows = _rows(5)
    entries = [ScpEntry(r.uid, 16000, "/x.flac") for r in rows] + [ScpEntry("ghost", 16000, "/g.flac")]
    with pytest.raises(ValueError, match="ghost"):
        filter_sweep(rows, entries, [Threshold("a", keep=1.0)], "keep", tmp_path)


def test_scores_round_trip_and_bad_line(tmp_path):
    rows = _rows(10)
    write_scores(tmp_path / "vqscore.tsv", rows)
    back = read_scores(tmp_path / "vqscore.tsv")
    assert [r.uid for r in back] == [r.uid for r in rows]
    assert back[3].score == pytest.approx(rows[3].score, abs=1e-6)
    with open(tmp_path / "vqscore.tsv", "a") as f:
        f.write("broken\tline\n")
    with pytest.raises(ValueError, match="line 12"):
        read_scores(tmp_path / "vqscore.tsv")


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(3)
    clean = np.round(rng.normal(0.8, 0.05, 40), 2)  # rounding makes ties
    dirty = np.round(rng.normal(0.75, 0.05, 25), 2)
    pairs = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(clean, dirty)]
    assert roc_auc(clean, dirty) == pytest.approx(np.mean(pairs))
    assert roc_auc([2, 3], [0, 1]) == 1.0 and roc_auc([0], [1]) == 0.0
    with pytest.raises(ValueError):
        roc_auc([], [1.0])


def test_auc_report_compares_within_the_dirty_source():
    rows = [ScoreRow("c1", "crowd", 0.9, 1), ScoreRow("c2", "crowd", 0.8, 1), ScoreRow("d1", "crowd", 0.7, 1),
            ScoreRow("d2", "crowd", 0.85, 1), ScoreRow("t1", "tts", 0.1, 1)]
    truth = {"c1": (0, "none"), "c2": (0, "none"), "d1": (1, "hum"), "d2": (1, "hiss"), "t1": (0, "none")}
    rep = auc_report(rows, truth)
    assert rep["sources"] == ["crowd"] and rep["clean"] == 2 and rep["dirty"] == 2
    assert rep["auc"] == pytest.approx(0.75)  # c1 beats both, c2 beats d1 only
    assert rep["by_kind"]["hum"]["auc"] == 1.0 and rep["by_kind"]["hiss"]["auc"] == 0.5


def test_source_resolvers():
    e = ScpEntry("crowd_ast_en_x", 8000, "/data/commonvoice/clips/a.flac")
    assert source_resolver(field="info", info={"crowd_ast_en_x": "crowd"})(e) == "crowd"
    assert source_resolver("^([a-z]+)_", "uid")(e) == "crowd"
    assert source_resolver(r"(?i)/(?P<source>commonvoice|vctk)/", "path")(e) == "commonvoice"
    with pytest.raises(ValueError, match="crowd_ast_en_x"):
        source_resolver("^zzz", "uid")(e)
    with pytest.raises(ValueError, match="speech_info"):
        source_resolver(field="info", info={})(e)


def test_scoring_in_worker_processes_matches_scoring_here(tmp_path):
    torch.manual_seed(0)
    model = VQScoreModel(VQScoreArgs(codebook_size=64)).eval()
    model.codebook.embed.copy_(l2norm(torch.randn(64, 32)))
    entries = []
    for i in range(6):
        fs = (16000, 22050)[i % 2]
        write_audio(tmp_path / f"u{i}.flac", babble_voice(1.0, fs, seed=i), fs)
        entries.append(ScpEntry(f"u{i}", fs, str(tmp_path / f"u{i}.flac")))
    entries.append(ScpEntry("gone", 16000, str(tmp_path / "gone.flac")))
    of = source_resolver("^([a-z])", "uid")
    failures = Failures("vqscore score")
    here = score_entries(model, entries[:6], of)
    pooled = score_entries(model, entries, of, workers=2, chunk=2, failures=failures)  # 2 processes
    assert [r.uid for r in pooled] == [r.uid for r in here]
    assert [r.score for r in pooled] == pytest.approx([r.score for r in here], abs=1e-6)
    assert [uid for uid, _ in failures.items] == ["gone"]
