"""Sharded data stages (issue #22): sharded = unsharded, byte for byte, and a shard reruns alone.

- For each sharded stage (simulate render, vqscore score, enhance, evaluate) the stage run once
  and run as 3 shards joined by `use-repro gather` write the same files, compared by sha256
  (the shards' own folders aside);
- a render shard run again on the same params.tsv keeps the rows it wrote, and renders them
  again once params.tsv is newer;
- through the real workflow (a hand-made corpus, `sharding.simulate: 3`): the shards are
  separate jobs; a run killed in a shard leaves the finished shards done, and the rerun runs
  the killed shard (and those not started) and the gather only;
- `snakemake -n` through the SLURM profile on the urgent2025 profile (the fake official layout
  of tests/test_dag.py) lists the shards of every sharded stage as separate jobs.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from use_repro.audio.io import write_audio
from use_repro.cli import main
from use_repro.config import REPO_ROOT
from use_repro.shards import parse_shard, shard_range

from .conftest import tone
from .data.sim_fixtures import dag_split_tree, date_settings_with_the_corpus, speech_like, write_corpus
from .train.conftest import one_thread  # noqa: F401 (autouse: one torch thread)

K = 3


def digests(root: Path, skip: tuple[str, ...] = ("shards",)) -> dict[str, str]:
    """relative path -> sha256 of every file under `root` but hidden ones (locks, temp files)
    and the folders named in `skip`."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") or part in skip for part in rel.parts):
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_shards_partition_the_rows_in_order():
    for n in (0, 1, 2, 7, 14, 1000):
        for count in (1, 2, 3, 8):
            ranges = [shard_range(n, (k, count)) for k in range(count)]
            assert [i for r in ranges for i in r] == list(range(n))
            assert max(len(r) for r in ranges) - min(len(r) for r in ranges) <= 1
    assert parse_shard("2/5") == parse_shard("2-of-5") == (2, 5)
    for bad in ("3/3", "-1/2", "a/b", "1"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected k/K"):
            parse_shard(bad)


# --- simulate render -------------------------------------------------------------------------

def test_render_in_shards_equals_one_render_and_resumes_inside_a_shard(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", seconds=1.0)
    out = tmp_path / "sim" / "test"
    assert main(["simulate", "params", "--corpus-dir", str(corpus), "--split", "test", "--out", str(out)]) == 0
    render = ["simulate", "render", "--meta", str(out / "params.tsv"), "--corpus-dir", str(corpus),
              "--out", str(out), "--threads", "1"]
    assert main(render) == 0
    whole = digests(out)
    assert len(whole) > 20 and "meta.tsv" in whole and "rejects.tsv" in whole
    for p in out.iterdir():  # the same folder: meta.tsv holds the audio's paths
        if p.name not in ("params.tsv", "params_rejects.tsv"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    lists = [out / "shards" / f"{k}-of-{K}" for k in range(K)]
    for k in range(K):
        assert main(render + ["--shard", f"{k}/{K}", "--lists", str(lists[k]),
                              "--keep-newer-than", str(out / "params.tsv")]) == 0
    assert main(["gather", "simulate", "--shards", *map(str, lists), "--out", str(out)]) == 0
    assert digests(out) == whole

    # resubmitted on the same params.tsv, shard 1 keeps every row it wrote ...
    mine = [p for p in (out / "noisy").rglob("*.flac")
            if p.stem in {line.split("\t")[0] for line in (lists[1] / "meta.tsv").read_text().splitlines()[1:]}]
    assert mine
    stamps = {p: p.stat().st_mtime_ns for p in mine}
    (lists[1] / "meta.tsv").unlink()
    assert main(render + ["--shard", f"1/{K}", "--lists", str(lists[1]),
                          "--keep-newer-than", str(out / "params.tsv")]) == 0
    assert {p: p.stat().st_mtime_ns for p in mine} == stamps
    assert digests(out) == whole
    # ... but nothing written before a newer params.tsv
    later = time.time() + 5
    os.utime(out / "params.tsv", (later, later))
    assert main(render + ["--shard", f"1/{K}", "--lists", str(lists[1]),
                          "--keep-newer-than", str(out / "params.tsv")]) == 0
    assert all(p.stat().st_mtime_ns != stamps[p] for p in mine)


def test_a_render_per_target_equals_one_render_of_every_target(tmp_path):
    """The DAG renders train/valid as one noisy job (no targets) and one --targets-only job per
    training target (issue #21: a new target re-renders nothing else). Every audio file is the
    one a render of all targets writes, byte for byte, each target's list holds every row with
    its noisy file and that target, and a target job sharded and gathered writes the same list."""
    from use_repro.data.manifest import read_meta

    corpus = write_corpus(tmp_path / "corpus", seconds=1.0)
    whole_dir, split_dir = tmp_path / "whole" / "train", tmp_path / "split" / "train"
    for d in (whole_dir, split_dir):
        assert main(["simulate", "params", "--corpus-dir", str(corpus), "--split", "train", "--out", str(d)]) == 0
    targets = ["early", "shifted", "anechoic", "early25ms"]

    def render(out, *extra):
        return main(["simulate", "render", "--meta", str(out / "params.tsv"), "--corpus-dir", str(corpus),
                     "--out", str(out), "--threads", "1", *extra])

    assert render(whole_dir, "--targets", *targets) == 0
    assert render(split_dir, "--targets") == 0  # noisy only (and the clean file of dry rows)
    noisy_rows = read_meta(split_dir / "meta.tsv")
    assert all(r["clean_shifted_path"] == "none" for r in noisy_rows)
    for target in targets:
        assert render(split_dir, "--targets", target, "--targets-only", "--list-name", f"meta.{target}.tsv") == 0
    audio = ("noisy", "clean", "clean_shifted", "clean_anechoic", "clean_early25ms")
    expected = {k: v for k, v in digests(whole_dir).items() if k.split("/")[0] in audio}
    got = {k: v for k, v in digests(split_dir).items() if k.split("/")[0] in audio}
    assert got == expected and len(got) > 40
    whole_rows = {r["id"]: r for r in read_meta(whole_dir / "meta.tsv")}
    for target in targets:
        column = "clean_path" if target == "early" else f"clean_{target}_path"
        rows = read_meta(split_dir / f"meta.{target}.tsv")
        assert [r["id"] for r in rows] == list(whole_rows)
        for r in rows:
            w = whole_rows[r["id"]]
            for c in ("noisy_path", column):
                assert Path(r[c]).relative_to(split_dir) == Path(w[c]).relative_to(whole_dir), (target, c)
        assert (split_dir / f"rejects.{target}.tsv").exists()
    # a target's render in shards, gathered, writes the same list
    one = (split_dir / "meta.shifted.tsv").read_bytes()
    (split_dir / "meta.shifted.tsv").unlink()
    lists = [split_dir / "shards" / f"{k}-of-{K}" for k in range(K)]
    for k in range(K):
        assert render(split_dir, "--targets", "shifted", "--targets-only", "--list-name", "meta.shifted.tsv",
                      "--shard", f"{k}/{K}", "--lists", str(lists[k])) == 0
    assert main(["gather", "simulate", "--shards", *map(str, lists), "--out", str(split_dir),
                 "--list-name", "meta.shifted.tsv"]) == 0
    assert (split_dir / "meta.shifted.tsv").read_bytes() == one
    # a target job before the noisy job names the missing noisy files
    fresh = tmp_path / "fresh" / "train"
    assert main(["simulate", "params", "--corpus-dir", str(corpus), "--split", "train", "--out", str(fresh)]) == 0
    assert render(fresh, "--targets", "shifted", "--targets-only", "--list-name", "meta.shifted.tsv") == 1
    assert "not rendered" in (fresh / "rejects.shifted.tsv").read_text()


# --- vqscore score ---------------------------------------------------------------------------

def test_scoring_in_shards_equals_one_scoring(tmp_path):
    import torch

    from use_repro.quality import vqscore as V

    torch.manual_seed(0)
    est = V.save_estimator(tmp_path / "estimator.pt", V.VQScoreModel(V.VQScoreArgs(codebook_size=16)), "trained")
    lines = []
    for i in range(7):
        fs = (16000, 22050, 8000)[i % 3]
        write_audio(tmp_path / f"u{i}.flac", speech_like(fs, 1.0, i).astype(np.float32), fs)
        lines.append(f"u{i} {fs} {tmp_path / f'u{i}.flac'}\n")
    scp = tmp_path / "speech_train.scp"
    scp.write_text("".join(lines))
    cfg = tmp_path / "p.yaml"
    cfg.write_text("profile: p\nvqscore: {source_field: uid, source_pattern: '(?P<source>u)'}\n")
    score = ["vqscore", "score", "--config", str(cfg), "--estimator", str(est), "--scp", str(scp), "--device", "cpu"]
    assert main(score + ["--out", str(tmp_path / "whole" / "vqscore.tsv")]) == 0
    parts = [tmp_path / "shards" / f"{k}-of-{K}.tsv" for k in range(K)]
    for k in range(K):
        assert main(score + ["--out", str(parts[k]), "--shard", f"{k}/{K}"]) == 0
    assert main(["gather", "vqscore", "--shards", *map(str, parts), "--out", str(tmp_path / "gathered.tsv")]) == 0
    whole = (tmp_path / "whole" / "vqscore.tsv").read_bytes()
    assert whole.count(b"\n") == 8 and (tmp_path / "gathered.tsv").read_bytes() == whole


# --- enhance ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    import torch

    from use_repro.config import load_config
    from use_repro.models.build import build_regression
    from use_repro.models.checkpoint import save_checkpoint

    torch.manual_seed(0)  # the tiny profile's regression model, untrained
    return save_checkpoint(tmp_path_factory.mktemp("enh") / "final.pt", build_regression(load_config("tiny")))


def test_enhancing_in_shards_equals_one_run(tmp_path, tiny_ckpt):
    noisy = tmp_path / "noisy"
    for i in range(7):  # a bucketed folder, as `simulate render` writes it
        write_audio(noisy / str(i % 2) / f"fileid_{i + 1}.flac", tone((16000, 8000)[i % 2], 0.5, seed=i), (16000, 8000)[i % 2])
    (noisy / "notes.txt").write_text("not audio\n")  # a skipped file, listed once
    run = ["enhance", "--checkpoint", str(tiny_ckpt), "--in", str(noisy), "--device", "cpu"]
    assert main(run + ["--out", str(tmp_path / "a" / "test")]) == 0
    shards = [tmp_path / "b" / "shards" / "test" / f"{k}-of-{K}" for k in range(K)]
    for k in range(K):
        assert main(run + ["--out", str(shards[k]), "--shard", f"{k}/{K}"]) == 0
    assert main(["gather", "enhance", "--shards", *(str(s / "enhanced.scp") for s in shards),
                 "--out", str(tmp_path / "b" / "test")]) == 0
    whole = digests(tmp_path / "a" / "test")
    assert len(whole) == 7 + 4 and digests(tmp_path / "b" / "test") == whole
    # the gathered folder is an enhance folder like any: a plain rerun into it keeps every file
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "b" / "test").glob("*.flac")}
    assert main(run + ["--out", str(tmp_path / "b" / "test")]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


# --- evaluate --------------------------------------------------------------------------------

def test_evaluating_in_shards_equals_one_run(tmp_path):
    for i in range(7):
        ref = speech_like(16000, 1.0, i)
        write_audio(tmp_path / "ref" / f"u{i}.flac", ref.astype(np.float32), 16000)
        est = ref + 0.05 * np.random.default_rng(i).standard_normal(ref.size)
        write_audio(tmp_path / "est" / f"u{i}.flac", est.astype(np.float32), 16000)
    run = ["evaluate", "--est", str(tmp_path / "est"), "--ref", str(tmp_path / "ref"),
           "--metrics", "PESQ", "SDR", "LSD", "--threads", "1"]
    assert main(run + ["--out", str(tmp_path / "a" / "test_early.csv")]) == 0
    parts = [tmp_path / "b" / "shards" / f"{k}-of-{K}.pkl" for k in range(K)]
    for k in range(K):
        assert main(run + ["--out", str(parts[k]), "--shard", f"{k}/{K}"]) == 0
    assert main(["gather", "evaluate", "--shards", *map(str, parts), "--out", str(tmp_path / "b" / "test_early.csv")]) == 0
    whole = digests(tmp_path / "a")
    assert set(whole) == {"test_early.csv", "test_early.json"} and digests(tmp_path / "b") == whole


# --- the workflow ----------------------------------------------------------------------------

OFFICIAL_HEADER = "id\tnoise_uid\tspeech_uid\tspk_id\tclean_path\tnoise_path\tsnr_dB\trir_uid\taugmentation\tfs\tlength\ttext"


def _snakemake(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO_ROOT / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_a_killed_render_shard_reruns_alone(tmp_path):
    """The real workflow on a hand-made corpus and params.tsv (as
    tests/data/test_simulate.py's DAG test): three render shards and their gather. The run is
    killed while one shard runs and another is done; the rerun leaves the finished shards alone
    and runs the killed one (and any not started) and the gather; meta.tsv lists every row."""
    from use_repro.data.manifest import read_meta

    rows = [f"fileid_{i}\tnz\tsp\ts\tc\tnz\t5.0\tnone\tnone\t16000\tnone\tt" for i in range(1, 7)]
    results, corpus, sim, now = dag_split_tree(tmp_path, OFFICIAL_HEADER, rows, 16000)
    prof = tmp_path / "p.yaml"
    prof.write_text(f"profile: p\nresults_root: {results}\nfigures_root: {tmp_path / 'figures'}\n"
                    f"sharding: {{simulate: {K}}}\n")
    target = ["--config", f"profile={prof}", "--", str(sim / "meta.tsv")]
    dry = _snakemake(tmp_path, "-n", *target)
    assert dry.returncode == 0, dry.stderr[-3000:]
    date_settings_with_the_corpus(results, now)
    from .test_dag import job_counts

    def plan() -> dict[str, int]:
        r = _snakemake(tmp_path, "-n", *target)
        assert r.returncode == 0, r.stderr[-3000:]
        return {k: v for k, v in job_counts(r.stdout + r.stderr).items() if k != "total"}

    assert plan() == {"simulate_render_shard": K, "simulate_render": 1}

    # the run killed (SIGKILL, workflow and job alike, as a node lost) while a shard runs and
    # another is done
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO_ROOT / "Snakefile"), "--cores", "1",
                             *target], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    logs = results / "p" / "logs" / "simulate"
    lists = {k: sim / "shards" / f"{k}-of-{K}" / "meta.tsv" for k in range(K)}
    killed, deadline = None, time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        done = [k for k in range(K) if lists[k].exists()]
        running = [k for k in range(K) if (logs / f"render_test.{k}-of-{K}.log").exists() and k not in done]
        if done and running:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = running[0]
            break
        time.sleep(0.02)
    proc.wait()
    assert killed is not None, "the run ended before a second shard started"
    assert not (sim / "meta.tsv").exists() and not lists[killed].exists()
    stamps = {k: p.stat().st_mtime_ns for k, p in lists.items() if p.exists()}
    assert stamps

    # resubmitted (a stale lock cleared, as after any killed run): the shards that finished are
    # not redone; the killed one (and any not started) and the gather are
    assert _snakemake(tmp_path, "--unlock", *target).returncode == 0
    assert plan() == {"simulate_render_shard": K - len(stamps), "simulate_render": 1}
    rerun = _snakemake(tmp_path, "--cores", "1", "--rerun-incomplete", *target)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {k: lists[k].stat().st_mtime_ns for k in stamps} == stamps
    assert lists[killed].exists()
    assert [r["id"] for r in read_meta(sim / "meta.tsv")] == [f"fileid_{i}" for i in range(1, 7)]


def test_slurm_dry_run_lists_the_shards_of_every_sharded_stage(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="the SLURM executor plugin is a test dependency (pip install -e '.[test]')")
    from use_repro.config import load_config
    from use_repro.report.experiments import experiments

    from .test_dag import SLURM_PROFILE, job_counts, snakemake, urgent_profile

    cfg_path = urgent_profile(tmp_path)
    cfg = load_config(cfg_path)
    shards = cfg["sharding"]
    assert min(shards.values()) > 1, "urgent2025 shards every data stage"
    r = snakemake(tmp_path, "tables", "-n", "--profile", str(SLURM_PROFILE), "--config", f"profile={cfg_path}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    counts = job_counts(out)
    exps = experiments(cfg)
    n_test = sum(e.test for e in exps.values())
    n_unseen = sum(e.unseen for e in exps.values())
    assert counts["simulate_render_shard"] == 3 * shards["simulate"] and counts["simulate_render"] == 3
    # each training target of train and valid: its own render, sharded as the split's
    n_targets = len({e.target for e in exps.values() if e.trained})
    assert counts["simulate_render_target"] == 2 * n_targets
    assert counts["simulate_render_target_shard"] == 2 * n_targets * shards["simulate"]
    assert counts["vqscore_score_shard"] == shards["vqscore"] and counts["vqscore_score"] == 1
    assert counts["enhance_shard"] == (n_test + n_unseen) * shards["enhance"] == counts["enhance"] * shards["enhance"]
    assert counts["evaluate_test_shard"] == (1 + 2 * n_test) * shards["evaluate"]
    assert counts["evaluate_unseen_shard"] == (1 + n_unseen) * shards["evaluate"]
    # each shard is its own job with its own shard of the rows
    assert f"--shard {shards['simulate'] - 1}-of-{shards['simulate']}" in out
    assert f"--shard 0-of-{shards['evaluate']}" in out
