"""Committed results on a fresh clone: one time stamp, and the DAG re-makes only the report."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from use_repro.committed import MARKER, committed_files, settle
from tests.test_dag import copy_checkout, make_up_to_date, planned

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(GIT + list(args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_settle_stamps_every_committed_file_once(tmp_path):
    (tmp_path / "results" / "p").mkdir(parents=True)
    a, b, local = (tmp_path / "results" / "p" / n for n in ("a.csv", "b.csv", "local.csv"))
    for f in (a, b, local):
        f.write_text("x\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", str(a), str(b))
    _git(tmp_path, "commit", "-qm", "c")
    when = int(_git(tmp_path, "log", "-1", "--format=%ct"))
    os.utime(b, (when + 100, when + 100))  # checked out later than a
    os.chdir(tmp_path)
    assert committed_files(tmp_path, ["results/p"]) == [tmp_path / "results/p/a.csv", tmp_path / "results/p/b.csv"]
    assert settle(tmp_path, "results/p", ["results/p"]) == 2
    assert a.stat().st_mtime == b.stat().st_mtime == when
    assert local.stat().st_mtime != when  # an uncommitted file keeps its own time
    assert (tmp_path / "results" / "p" / MARKER).exists()
    os.utime(b, (when + 5, when + 5))
    assert settle(tmp_path, "results/p", ["results/p"]) == 0  # once per checkout
    assert b.stat().st_mtime == when + 5


# What the report reads, committed for mini and small (.gitignore): per-utterance scores, curves,
# validation scores, settings, the inputs of tables and figures, and the report's own outputs.
EVIDENCE = ("eval/", "curves.csv", "valid_scores.csv", "residual_correlation.json", "settings/", "tables/",
            "vqscore/datasize.csv", "vqscore/auc.json", "unseen/utt2lang", "simulation/test/meta.tsv",
            "summary.csv", "provenance.")


@pytest.mark.slow
def test_a_fresh_clone_remakes_the_report_without_training(tmp_path):
    """A checkout whose evidence is committed plans nothing on a fresh clone (no Snakemake
    metadata, files written in path order); a report setting edited there reruns the report
    jobs only, and an evaluation setting reruns the evaluations."""
    repo = tmp_path / "repo"
    snakefile = copy_checkout(repo)
    # profiles named by path: the installed package's own are those of the repository it came from
    make_up_to_date(repo, snakefile, str(repo / "experiments" / "config" / "tiny.yaml"))
    _git(repo, "init", "-q")
    _git(repo, "add", "Snakefile", "environment.yml", "experiments")
    results = repo / "results" / "tiny"
    evidence = [str(p.relative_to(repo)) for p in results.rglob("*") if p.is_file()
                and any(e in str(p.relative_to(results)) for e in EVIDENCE)]
    evidence += [str(p.relative_to(repo)) for p in (repo / "figures").rglob("*") if p.is_file()]
    assert any("valid_scores.csv" in e for e in evidence) and any("/eval/" in e for e in evidence)
    _git(repo, "add", "-f", *evidence)
    _git(repo, "commit", "-qm", "evidence")
    time.sleep(1.1)  # the clone's files are newer than the commit time
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert not (clone / "results" / "tiny" / "tiny" / "final.pt").exists()
    profile = clone / "experiments" / "config" / "tiny.yaml"
    assert planned(clone, str(profile), clone / "Snakefile") == {}
    assert (clone / "results" / "tiny" / MARKER).exists()
    # a setting edited in the clone's profile reruns exactly the jobs that read it: a report-only
    # one, the comparison (and the provenance that lists it)
    cfg = yaml.safe_load(profile.read_text())
    cfg.setdefault("report", {})["pesq_tolerance"] = 0.1
    # (keys in their order: the tables print the runs in the profile's order, so sorting the
    # experiments would rightly redraw them)
    profile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = planned(clone, str(profile), clone / "Snakefile")
    assert set(plan) - {"total", "tables"} == {"report_compare", "report_provenance"}
    # a training setting reruns training; a clone has no audio, so the data it reads is rebuilt
    # first (and, rebuilt, reruns every job that reads it: only the report is free of data)
    cfg["experiments"]["early"]["steps"] += 1
    profile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = planned(clone, str(profile), clone / "Snakefile")
    assert plan.get("train", 0) >= 1 and plan.get("corpus") == 1
