"""`use-repro vqscore ...` end to end on a corpus the test writes: train -> score -> filter ->
histogram -> auc -> sweep."""
import csv
import json

import numpy as np
import pytest
import yaml

from tests.quality.conftest import babble_voice
from use_repro.audio.io import write_audio
from use_repro.cli import main
from use_repro.data.manifest import read_scp


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    lines, info, truth = [], [], []
    rng = np.random.default_rng(0)
    for i in range(16):
        src = "crowd" if i % 2 else "tts"
        uid = f"{src}_{i:03d}"
        fs = [16000, 22050, 8000][i % 3]
        x = babble_voice(2.0, fs=fs, seed=i)
        dirty = src == "crowd" and i % 4 == 1
        if dirty:
            x = x + 0.2 * rng.standard_normal(x.size).astype(np.float32) * np.abs(x).max()
        write_audio(root / f"{uid}.flac", x, fs)
        lines.append(f"{uid} {fs} {root / f'{uid}.flac'}\n")
        info.append({"uid": uid, "split": "train", "source": src})
        if src == "crowd":
            truth.append({"uid": uid, "dirty": int(dirty), "kind": "noise" if dirty else "none"})
    (root / "speech_train.scp").write_text("".join(lines))
    for name, rows in (("speech_info.tsv", info), ("crowd_dirty.tsv", truth)):
        with open(root / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    cfg = {"profile": "clitest", "seed": 0,
           "vqscore": {"train_exclude_sources": ["crowd"], "model": {"codebook_size": 128},
                       "train": {"steps": 12, "batch_size": 4, "segment_seconds": 1.0, "log_every": 6},
                       "thresholds": [{"name": "all", "score": 0.0, "keep": 1.0},
                                      {"name": "half", "score": 0.5, "keep": 0.5}]}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _run(*argv):
    assert main(["vqscore", *map(str, argv)]) == 0


def test_vqscore_stage_end_to_end(corpus, tmp_path, capsys):
    cfg, scp, info = corpus / "cfg.yaml", corpus / "speech_train.scp", corpus / "speech_info.tsv"
    est = tmp_path / "estimator.pt"
    _run("train", "--config", cfg, "--scp", scp, "--info", info, "--out", est, "--threads", 1)
    assert est.exists() and (tmp_path / "estimator.train.csv").exists()

    scores = tmp_path / "vqscore.tsv"
    _run("score", "--config", cfg, "--estimator", est, "--scp", scp, "--info", info, "--out", scores)
    with open(scores) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["uid"] for r in rows] == [e.uid for e in read_scp(scp)]
    assert {r["source"] for r in rows} == {"crowd", "tts"}
    assert all(0.0 < float(r["score"]) <= 1.0 and float(r["duration"]) == pytest.approx(2.0, abs=0.01)
               for r in rows)

    _run("filter", "--config", cfg, "--scores", scores, "--scp", scp, "--estimator", est, "--out-dir", tmp_path)
    assert len(read_scp(tmp_path / "filtered" / "speech_train.all.scp")) == 16
    assert len(read_scp(tmp_path / "filtered" / "speech_train.half.scp")) == 8  # equal durations: half the hours
    with open(tmp_path / "datasize.csv") as f:
        table = list(csv.DictReader(f))
    assert table[0]["mode"] == "keep" and table[1]["threshold"] == "half"

    _run("histogram", "--config", cfg, "--scores", scores, "--fig2", tmp_path / "fig2.png",
         "--fig7", tmp_path / "fig7.png")
    assert all((tmp_path / n).exists() for n in ("fig2.png", "fig2.pdf", "fig7.png", "fig7.pdf"))

    capsys.readouterr()
    _run("auc", "--scores", scores, "--truth", corpus / "crowd_dirty.tsv", "--out", tmp_path / "auc.json")
    out = capsys.readouterr().out
    assert "ROC AUC" in out and "crowd" in out
    rep = json.loads((tmp_path / "auc.json").read_text())
    assert rep["clean"] == 4 and rep["dirty"] == 4
    assert 0.0 <= rep["auc"] <= 1.0 and set(rep["by_kind"]) == {"noise"}

    _run("sweep", "--estimator", est, "--scp", scp, "--uid-pattern", "^tts_", "--count", 3, "--snrs", 20, 0)
    assert "monotonic" in capsys.readouterr().out


def test_score_names_a_missing_file(corpus, tmp_path):
    est = tmp_path / "e.pt"
    _run("train", "--config", corpus / "cfg.yaml", "--scp", corpus / "speech_train.scp",
         "--info", corpus / "speech_info.tsv", "--out", est)
    bad = tmp_path / "bad.scp"
    bad.write_text((corpus / "speech_train.scp").read_text().splitlines()[0] + "\n" + f"tts_999 16000 {tmp_path}/nope.flac\n")
    info = tmp_path / "info.tsv"
    info.write_text("uid\tsource\ntts_000\ttts\ntts_999\ttts\n")
    status = main(["vqscore", "score", "--config", str(corpus / "cfg.yaml"), "--estimator", str(est),
                   "--scp", str(bad), "--info", str(info), "--out", str(tmp_path / "s.tsv")])
    assert status == 1
    rejects = (tmp_path / "s.rejects.tsv").read_text()
    assert "tts_999" in rejects and "nope.flac" in rejects
