"""The training stages end to end on tiny generated data (CPU, deterministic mode)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from use_repro.audio.stft import mag_pha_stft
from use_repro.cli import stage_parser
from use_repro.data.dataset import MetaDataset, load_rows
from use_repro.models.checkpoint import load_model
from use_repro.models.mamba import resolve_backend
from use_repro.config import load_config
from use_repro.models.build import build_regression
from use_repro.seeding import derive_seed
from use_repro.train import gan, regression, setup
from use_repro.train.loop import CurveFile, list_checkpoints
from use_repro.train.arguments import TrainRun
from use_repro.train.losses import weighted_sum

from .conftest import write_profile


def parse(*argv: str):
    parser, _ = stage_parser("train")
    return parser.parse_args([str(a) for a in argv])


def run_of(*argv: str) -> TrainRun:
    """The training run a `use-repro train` command line describes (what the training code takes)."""
    return TrainRun.from_namespace(parse(*argv))


def dataset_loss(model, meta: Path, weights: dict) -> float:
    """Weighted reconstruction loss of `model` over every utterance (whole, uncropped)."""
    ds = MetaDataset(load_rows(meta, "shifted"))
    total = 0.0
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            noisy, clean = item["noisy"][None], item["clean"][None]
            x, ref = regression.spectra(noisy, item["fs"]), regression.spectra(clean, item["fs"])
            est = regression.output_spectra(model(x["mag_c"], x["pha"]), item["fs"], clean.shape[-1])
            total += float(weighted_sum(regression.recon_losses(est, ref, item["fs"], weights), weights))
    return total / len(ds)


def test_regression_30_steps_reduce_the_loss(tmp_path, tiny_meta):
    cfg = write_profile(tmp_path / "tiny.yaml")
    out = tmp_path / "run"
    args = run_of("regression", "--config", cfg, "--train-meta", tiny_meta, "--valid-meta", tiny_meta,
                  "--target", "shifted", "--steps", 30, "--out", out, "--device", "cpu")
    res = regression.train(args)
    assert res.step == 30 and res.nonfinite_total == 0
    # the model the run started from: the profile's size, initialised from the run's seed
    initial = setup.build(lambda: build_regression(load_config(cfg)), derive_seed(0, "train.init", "regression"))
    weights = {"magnitude": 0.9, "phase": 0.3, "complex": 0.1, "time": 0.2, "consistency": 0.1}
    before = dataset_loss(initial.eval(), tiny_meta, weights)
    after = dataset_loss(load_model(out / "final.pt"), tiny_meta, weights)
    assert after < 0.9 * before, (before, after)
    # the run's files: validation curves at 0, 10, 20, 30; the last two checkpoints; training log
    rows = CurveFile(out / "curves.csv").rows()
    assert sorted({r[0] for r in rows}) == [0, 10, 20, 30]
    assert {r[1] for r in rows} == {"magnitude", "phase", "time"}
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [25, 30]
    assert {"loss", "magnitude", "phase"} <= {r[1] for r in CurveFile(out / "train_log.csv").rows()}
    # the selective scan the run used, for the provenance report
    scan = json.loads((out / setup.SCAN_RECORD).read_text())
    assert scan["device"] == "cpu" and scan["backends"] == [resolve_backend("auto", torch.device("cpu"))]


def _cli(*argv) -> list[str]:
    return [sys.executable, "-m", "use_repro", "train", *map(str, argv)]


def test_killed_run_resumes_to_the_same_parameters(tmp_path, tiny_meta):
    cfg = write_profile(tmp_path / "tiny.yaml", checkpoint_every=3, validate_every=5)
    common = ["--config", cfg, "--train-meta", tiny_meta, "--valid-meta", tiny_meta, "--target", "shifted",
              "--steps", 11, "--device", "cpu", "--threads", 1]
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    ref = subprocess.run(_cli("regression", *common, "--out", tmp_path / "ref"), env=env,
                         capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]

    run = tmp_path / "run"
    proc = subprocess.Popen(_cli("regression", *common, "--out", run), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not list_checkpoints(run / "checkpoints") and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: mid-step, or mid-write of a checkpoint
    proc.wait()
    killed_at = [s for s, _ in list_checkpoints(run / "checkpoints")]
    assert killed_at and killed_at[-1] < 11, f"the run was not interrupted mid-way: {killed_at}"
    assert not (run / "final.pt").exists()

    resumed = subprocess.run(_cli("regression", *common, "--out", run), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {run / 'checkpoints'}" in resumed.stderr
    a = torch.load(tmp_path / "ref" / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(run / "final.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed parameters differ from the uninterrupted run"
    assert CurveFile(run / "curves.csv").rows() == CurveFile(tmp_path / "ref" / "curves.csv").rows()


def test_untrained_gan_stage_returns_the_regression_output(tmp_path, tiny_meta, tiny_regression):
    cfg = write_profile(tmp_path / "tiny.yaml")
    out = tmp_path / "gan0"
    gan.train(run_of("gan", "--config", cfg, "--train-meta", tiny_meta, "--target", "shifted",
                     "--init", tiny_regression, "--steps", 0, "--out", out, "--device", "cpu"), "gan")
    two_stage, reg = load_model(out / "final.pt"), load_model(tiny_regression)
    assert type(two_stage).__name__ == "TwoStage"
    x = MetaDataset(load_rows(tiny_meta, "shifted"))[0]["noisy"][None]
    with torch.no_grad():
        mag_c, pha, _ = mag_pha_stft(x, 8000)
        (final_mag, final_pha, _), (reg_mag, reg_pha, _) = two_stage.forward_both(mag_c, pha)
        assert torch.equal(final_mag, reg_mag) and torch.equal(final_pha, reg_pha)  # exactly
        # and the exported regression part is the --init model (same weights; a separate module
        # instance may round differently in the last bit, hence the tolerance)
        torch.testing.assert_close(two_stage.enhance_waveform(x, 8000), reg.enhance_waveform(x, 8000),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize("stage", ["gan", "finetune"])
def test_adversarial_stages_train_and_record_figure9_curves(tmp_path, tiny_meta, tiny_regression, stage):
    cfg = write_profile(tmp_path / "tiny.yaml", validate_every=2,
                        valid_metrics=["pesq", "magnitude", "phase", "time"])
    out = tmp_path / stage
    res = gan.train(run_of(stage, "--config", cfg, "--train-meta", tiny_meta, "--valid-meta", tiny_meta,
                           "--target", "shifted", "--init", tiny_regression, "--steps", 3, "--out", out,
                           "--device", "cpu"), stage)
    assert res.step == 3 and res.nonfinite_total == 0
    assert {"adversarial", "feature_matching", "discriminator", "magnitude"} <= set(res.history[-1])
    rows = CurveFile(out / "curves.csv").rows()
    assert sorted({r[0] for r in rows}) == [0, 2, 3]
    assert {"PESQ", "magnitude", "phase", "time"} <= {r[1] for r in rows}
    model = load_model(out / "final.pt")
    assert type(model).__name__ == ("TwoStage" if stage == "gan" else "USEMamba")
    if stage == "gan":  # the frozen regression part did not move
        reg = load_model(tiny_regression)
        assert all(torch.equal(p, q) for p, q in zip(model.regression.state_dict().values(),
                                                    reg.state_dict().values()))
        js = tmp_path / "rc.json"
        args = parse("residual-correlation", "--checkpoint", out / "final.pt", "--test-meta", tiny_meta,
                     "--out", js, "--device", "cpu")
        assert gan.run_residual(args) == 0
        result = json.loads(js.read_text())
        assert result["utterances"] == 3 and result["target"] == "shifted"
        assert -1.0 <= result["mean_correlation"] <= 1.0


def test_on_the_fly_simulation(tmp_path):
    from tests.data.sim_fixtures import write_corpus
    from use_repro.data.dataset import Draw, SimulatedDataset
    from use_repro.data.params import SimConfig

    corpus = write_corpus(tmp_path / "corpus", seconds=0.6, rates=(8000, 16000), n_noise=1)
    cfg = write_profile(tmp_path / "tiny.yaml", segment_seconds=0.3)
    args = run_of("regression", "--config", cfg, "--simulate", "--corpus-dir", corpus, "--target", "early",
                  "--steps", 2, "--out", tmp_path / "run", "--device", "cpu")
    ctx = setup.context(args, "regression", "early")
    ds = setup.training_dataset(args, ctx)
    assert isinstance(ds, SimulatedDataset) and len(ds) == 4
    a, b, c = ds[Draw(1, 123)], ds[Draw(1, 123)], ds[Draw(1, 124)]
    assert torch.equal(a["noisy"], b["noisy"]) and torch.equal(a["clean"], b["clean"])  # seeded
    assert not torch.equal(a["noisy"], c["noisy"])
    assert a["noisy"].shape == a["clean"].shape and a["noisy"].shape[0] <= int(0.3 * a["fs"])
    with pytest.raises(ValueError, match="not rendered"):
        SimulatedDataset(ds.speech, ds.noise, ds.rir, ds.wind, SimConfig(), "early33ms")
    assert regression.train(args).step == 2


def test_the_residual_correlation_s_forward_does_not_depend_on_the_thread_count():
    """`train residual-correlation` runs the two-stage model forward with the job's threads (the
    profile's execution-only `threads`): its outputs, the numbers it correlates, are the same on
    1 and 2 torch threads (a forward splits channels, not sums; only training's backward
    differs, which is why training computes with train.threads). The mini model."""
    from use_repro.config import load_config
    from use_repro.models.build import net_config
    from use_repro.models.generator import TwoStage

    cfg = load_config("mini")
    torch.manual_seed(0)
    model = TwoStage(net_config(cfg, "regression").to_dict(), net_config(cfg, "generator").to_dict()).eval()
    g = torch.Generator().manual_seed(1)
    mag, pha = torch.randn(1, 201, 150, generator=g).abs(), torch.randn(1, 201, 150, generator=g)
    outs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)  # the autouse fixture restores one thread
        with torch.inference_mode():
            (final, _, _), (regression, _, _) = model.forward_both(mag, pha)
        outs.append((final.clone(), regression.clone()))
    assert all(torch.equal(a, b) for a, b in zip(*outs))
