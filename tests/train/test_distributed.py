"""Two CPU processes under torchrun (gloo) train together and average their gradients; the GAN
stage runs under DDP too."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from use_repro.config import load_config
from use_repro.data.dataset import DrawSampler, MetaDataset, load_rows
from use_repro.models.checkpoint import load_model
from use_repro.seeding import derive_seed
from use_repro.train.distributed import DistInfo
from use_repro.train.loop import CurveFile
from use_repro.train.regression import RegressionTask

from .conftest import make_meta, write_profile


def single_process_gradient(ckpt: Path, meta: Path, cfg_path: Path, seed: int, rank: int, world: int):
    """The gradient one process computes for the first item a given rank draws."""
    cfg = load_config(cfg_path)
    ds = MetaDataset(load_rows(meta, "shifted"), cfg["train"]["segment_seconds"])
    item = ds[DrawSampler(len(ds), derive_seed(seed, "train.data", "regression"), 0, rank, world).draw(0)]
    task = RegressionTask(load_model(ckpt).train(), cfg["train"]["loss_weights"],
                          DistInfo(0, 1, 0, torch.device("cpu")), {})
    task.model.zero_grad()
    task.training_step(item, lambda name, loss: loss.backward() or True)
    return {n: p.grad.clone() for n, p in task.model.named_parameters()}


def test_two_process_ddp_averages_gradients(tmp_path, tiny_regression):
    meta = make_meta(tmp_path / "data", n=4, rates=(8000, 16000))  # ranks alternate between rates
    cfg = write_profile(tmp_path / "tiny.yaml", checkpoint_every=2, validate_every=2)
    out = tmp_path / "ddp"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_worker.py")),
           "regression", "--config", str(cfg), "--train-meta", str(meta), "--valid-meta", str(meta),
           "--target", "shifted", "--init", str(tiny_regression), "--steps", "2", "--device", "cpu",
           "--threads", "1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    g0 = torch.load(out / "grads_rank0.pt")
    g1 = torch.load(out / "grads_rank1.pt")
    expected = [single_process_gradient(tiny_regression, meta, cfg, 0, rank, 2) for rank in (0, 1)]
    assert g0.keys() == g1.keys() == expected[0].keys()
    for name in g0:
        torch.testing.assert_close(g0[name], g1[name], rtol=0, atol=0)  # identical on both ranks
    ddp = torch.cat([g0[n].flatten() for n in g0])
    avg = torch.cat([((expected[0][n] + expected[1][n]) / 2).flatten() for n in g0])
    # float32 sums in another order (threads, ranks) differ in the last bits (~1e-5 relative);
    # a missing or wrong average would be off by tens of percent
    assert float((ddp - avg).norm() / avg.norm()) < 1e-4
    assert float((ddp - avg).abs().max()) < 1e-3 * float(avg.abs().max())
    # the two ranks drew different utterances, so averaging was not trivially the identity
    assert any(not torch.allclose(expected[0][n], expected[1][n]) for n in g0)
    # rank 0 wrote the run's files, once
    assert (out / "final.pt").exists() and (out / "curves.csv").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002.pt"]
    # the two-stage GAN in the same process group: generator and discriminator under DDP
    assert (out / "gan" / "final.pt").exists()
    assert {r[0] for r in CurveFile(out / "gan" / "curves.csv").rows()} == {0, 2, 3}
