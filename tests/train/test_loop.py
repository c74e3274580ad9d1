"""The generic loop on a toy task: resume, non-finite handling, checkpoints, curves."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from use_repro.train.loop import (CurveFile, LoopSettings, NonFiniteLossError, SettingsChangedError,
                                  Trainer, list_checkpoints)


class ToyTask:
    """y = w x regression; `bad_steps` (1-based) get a NaN loss."""

    def __init__(self, bad_steps=()):
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 1))
        self.bad_steps, self.calls = set(bad_steps), 0

    def param_groups(self):
        return {"model": dict(self.model.named_parameters())}

    def training_step(self, batch, update):
        self.calls += 1
        x, y = batch
        loss = ((self.model(x) - y) ** 2).mean()  # dropout: uses the torch RNG, so resume must restore it
        if self.calls in self.bad_steps:
            loss = loss * float("nan")
        update("model", loss)
        return {"mse": float(loss.detach())}

    def state_dict(self):
        return {"model": self.model.state_dict()}

    def load_state_dict(self, s):
        self.model.load_state_dict(s["model"])

    def train(self, mode=True):
        self.model.train(mode)

    def export(self):
        return {"model": self.model.state_dict()}


def toy_batches(start):
    k = start
    while True:
        g = torch.Generator().manual_seed(k)
        x = torch.randn(16, 4, generator=g)
        yield x, x.sum(1, keepdim=True)
        k += 1


def settings(steps, **kw):
    base = dict(lr=1e-2, checkpoint_every=5, keep_last=2, validate_every=4, log_every=2,
                deterministic=True, seed=0)
    base.update(kw)
    return LoopSettings(steps=steps, **base)


def params(task):
    return torch.cat([p.detach().flatten() for p in task.model.parameters()])


def test_loss_decreases_and_files(tmp_path):
    task = ToyTask()
    res = Trainer(task, toy_batches, settings(30), tmp_path, validate=lambda s: {"val": float(s)}).fit()
    assert res.step == 30
    first, last = res.history[0]["mse"], sum(h["mse"] for h in res.history[-5:]) / 5
    assert last < 0.5 * first
    assert (tmp_path / "final.pt").exists()
    steps = [s for s, _ in list_checkpoints(tmp_path / "checkpoints")]
    assert steps == [25, 30]  # keep_last=2
    rows = CurveFile(tmp_path / "curves.csv").rows()
    assert [r[0] for r in rows] == [0, 4, 8, 12, 16, 20, 24, 28, 30]
    assert {r[1] for r in CurveFile(tmp_path / "train_log.csv").rows()} == {"mse"}


def test_resume_after_crash_matches_uninterrupted(tmp_path):
    ref = ToyTask()
    Trainer(ref, toy_batches, settings(17), tmp_path / "ref", validate=lambda s: {"val": float(s)}).fit()

    def crashing(start):
        for k, b in enumerate(toy_batches(start), start):
            if k == 12:  # after the step-10 checkpoint, mid-way to the next
                raise KeyboardInterrupt
            yield b

    a = ToyTask()
    with pytest.raises(KeyboardInterrupt):
        Trainer(a, crashing, settings(17), tmp_path / "run", validate=lambda s: {"val": float(s)}).fit()
    b = ToyTask()  # a fresh process would start from fresh weights too
    res = Trainer(b, toy_batches, settings(17), tmp_path / "run", validate=lambda s: {"val": float(s)}).fit()
    assert res.resumed_from == 10
    assert torch.equal(params(b), params(ref))
    # validation rows are neither lost nor duplicated by the crash
    assert CurveFile(tmp_path / "run" / "curves.csv").rows() == CurveFile(tmp_path / "ref" / "curves.csv").rows()


def test_nonfinite_steps_are_skipped_and_counted(tmp_path):
    task = ToyTask(bad_steps={3, 4})
    res = Trainer(task, toy_batches, settings(6, validate_every=0), tmp_path).fit()
    assert res.nonfinite_total == 2
    assert all(math.isfinite(float(p.detach().sum())) for p in task.model.parameters())
    assert len(res.history) == 4


def test_too_many_nonfinite_in_a_row_stops(tmp_path):
    task = ToyTask(bad_steps=set(range(3, 100)))
    with pytest.raises(NonFiniteLossError, match="consecutive"):
        Trainer(task, toy_batches, settings(50, max_consecutive_nonfinite=4, validate_every=0), tmp_path).fit()


# --- a run folder is bound to its settings ----------------------------------------------------

def identity(**kw):
    base = {"stage": "regression", "target": "shifted", "seed": 0, "settings": {"train.lr": 1e-2}}
    base.update(kw)
    return base


def run(out, steps, ident, restart=False, batches=toy_batches):
    task = ToyTask()
    res = Trainer(task, batches, settings(steps, restart_if_changed=restart), out,
                  validate=lambda s: {"val": float(s)}, meta={"identity": ident}).fit()
    return task, res


def test_a_folder_of_other_settings_is_refused_naming_the_keys(tmp_path):
    run(tmp_path, 10, identity())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(SettingsChangedError) as e:
        run(tmp_path, 10, identity(target="anechoic", settings={"train.lr": 2e-2}))
    msg = str(e.value)
    assert "target: 'shifted' -> 'anechoic'" in msg and "settings.train.lr: 0.01 -> 0.02" in msg
    assert "stage" not in msg and "--restart-if-changed" in msg
    # nothing in the folder was touched
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_restart_if_changed_trains_afresh_as_in_an_empty_folder(tmp_path):
    run(tmp_path / "run", 10, identity())
    old_final = (tmp_path / "run" / "final.pt").read_bytes()
    new_ident = identity(target="anechoic")
    task, res = run(tmp_path / "run", 7, new_ident, restart=True)
    ref, _ = run(tmp_path / "ref", 7, new_ident)
    assert res.resumed_from is None and res.step == 7
    assert torch.equal(params(task), params(ref))
    assert (tmp_path / "run" / "final.pt").read_bytes() != old_final
    # only the new run's checkpoints and curve rows are left
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [5, 7]
    assert CurveFile(tmp_path / "run" / "curves.csv").rows() == CurveFile(tmp_path / "ref" / "curves.csv").rows()


def test_a_checkpoint_without_identity_is_not_resumed(tmp_path):
    run(tmp_path, 5, None)
    with pytest.raises(SettingsChangedError, match="identity: none recorded"):
        run(tmp_path, 10, identity())


def test_more_steps_resume_and_fewer_steps_resume_from_an_earlier_checkpoint(tmp_path):
    ref15, _ = run(tmp_path / "ref15", 15, identity())
    ref10, _ = run(tmp_path / "ref10", 10, identity())
    run(tmp_path / "run", 10, identity())
    longer, res = run(tmp_path / "run", 15, identity())
    assert res.resumed_from == 10 and torch.equal(params(longer), params(ref15))
    shorter, res = run(tmp_path / "run", 10, identity())  # checkpoints 10 and 15 are kept
    assert res.resumed_from == 10 and torch.equal(params(shorter), params(ref10))
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [10]
    assert CurveFile(tmp_path / "run" / "curves.csv").rows() == CurveFile(tmp_path / "ref10" / "curves.csv").rows()


def test_a_run_killed_before_its_first_checkpoint_restarts_without_duplicate_rows(tmp_path):
    def crashing(start):
        for k, b in enumerate(toy_batches(start), start):
            if k == 3:
                raise KeyboardInterrupt
            yield b

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", 10, identity(), batches=crashing)
    assert CurveFile(tmp_path / "run" / "curves.csv").rows()  # the step-0 validation row
    run(tmp_path / "run", 10, identity())
    run(tmp_path / "ref", 10, identity())
    assert CurveFile(tmp_path / "run" / "curves.csv").rows() == CurveFile(tmp_path / "ref" / "curves.csv").rows()


def test_resume_restores_the_curves_snakemake_deleted(tmp_path):
    run(tmp_path / "ref", 17, identity())

    def crashing(start):
        for k, b in enumerate(toy_batches(start), start):
            if k == 12:
                raise KeyboardInterrupt
            yield b

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", 17, identity(), batches=crashing)
    # what `snakemake --rerun-incomplete` does to the interrupted job's outputs first
    (tmp_path / "run" / "curves.csv").unlink()
    (tmp_path / "run" / "train_log.csv").unlink()
    _, res = run(tmp_path / "run", 17, identity())
    assert res.resumed_from == 10
    for name in ("curves.csv", "train_log.csv"):
        assert CurveFile(tmp_path / "run" / name).rows() == CurveFile(tmp_path / "ref" / name).rows(), name
