"""Checkpoints: class + arguments + weights round trip, atomic writes, CPU loading."""
from __future__ import annotations

import os

import pytest
import torch

from use_repro.models.checkpoint import (CheckpointError, checkpoint_dict, load_checkpoint,
                                         load_model, read_checkpoint, save_checkpoint)
from use_repro.models.discriminator import MultiBandDiscriminator
from use_repro.models.generator import ResidualGenerator, TwoStage
from use_repro.models.usemamba import USEMamba

SMALL = dict(num_blocks=1, channels=4, d_state=2, expand=1, dense_depth=1)


def _models():
    torch.manual_seed(0)
    reg, gen = USEMamba(SMALL), ResidualGenerator(SMALL)
    return [reg, gen, TwoStage.from_models(reg, gen), MultiBandDiscriminator(channels=2)]


@pytest.mark.parametrize("index", range(4))
def test_round_trip(tmp_path, index):
    model = _models()[index]
    path = save_checkpoint(tmp_path / "m.pt", model, extra={"step": 7, "note": "x"})
    loaded, extra = load_checkpoint(path)
    assert type(loaded) is type(model) and extra == {"step": 7, "note": "x"}
    assert not loaded.training
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert loaded.init_args == model.init_args


def test_same_outputs_after_reload(tmp_path):
    model = USEMamba(SMALL).eval()
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")
    mag_c, pha = torch.rand(1, 161, 9), torch.rand(1, 161, 9)
    with torch.no_grad():
        assert torch.equal(model(mag_c, pha)[0], loaded(mag_c, pha)[0])


def test_file_records_class_and_args(tmp_path):
    save_checkpoint(tmp_path / "m.pt", USEMamba(SMALL))
    ckpt = read_checkpoint(tmp_path / "m.pt")
    assert ckpt["class"] == "use_repro.models.usemamba.USEMamba"
    assert ckpt["args"]["config"]["channels"] == 4
    assert all(t.device.type == "cpu" for t in ckpt["state_dict"].values())


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save_checkpoint(tmp_path / "m.pt", USEMamba(SMALL))
    save_checkpoint(tmp_path / "m.pt", USEMamba(SMALL))      # overwrite
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_the_same_checkpoint_is_the_same_file_byte_for_byte(tmp_path):
    # torch.save given a path names the archive's inner folder after it (a random temp name)
    from use_repro.train.loop import save_torch_atomic

    torch.manual_seed(0)
    model = USEMamba(SMALL)
    save_checkpoint(tmp_path / "a.pt", model)
    save_checkpoint(tmp_path / "b.pt", model)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    save_torch_atomic({"w": torch.arange(4.0)}, tmp_path / "c.pt")
    save_torch_atomic({"w": torch.arange(4.0)}, tmp_path / "d.pt")
    assert (tmp_path / "c.pt").read_bytes() == (tmp_path / "d.pt").read_bytes()


def test_tensors_saved_on_another_device_load_on_cpu(tmp_path):
    # A GPU run saves CUDA tensors; map_location must bring every tensor to the CPU. Without a GPU
    # this is simulated on the checkpoint's `extra` (weights are always moved to the CPU on save).
    payload = checkpoint_dict(USEMamba(SMALL), extra={"opt": {"m": torch.ones(3)}})
    torch.save(payload, tmp_path / "m.pt")
    seen = []

    def spy(storage, location):        # map_location callable: records where tensors came from
        seen.append(location)
        return storage

    read_checkpoint(tmp_path / "m.pt", map_location=spy)
    assert seen and set(seen) == {"cpu"}
    model, extra = load_checkpoint(tmp_path / "m.pt", map_location="cpu")
    assert next(model.parameters()).device.type == "cpu" and extra["opt"]["m"].device.type == "cpu"


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint .*expected a use-repro checkpoint"):
        load_model(tmp_path / "x.pt")
    payload = checkpoint_dict(USEMamba(SMALL))
    payload["class"] = "use_repro.models.usemamba.NoSuchModel"
    torch.save(payload, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="cannot import"):
        load_model(tmp_path / "y.pt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_saved_on_gpu_loads_on_cpu(tmp_path):
    model = USEMamba(SMALL).cuda()
    save_checkpoint(tmp_path / "m.pt", model, extra={"t": torch.ones(2, device="cuda")})
    loaded, extra = load_checkpoint(tmp_path / "m.pt", map_location="cpu")
    assert next(loaded.parameters()).device.type == "cpu" and extra["t"].device.type == "cpu"
    # and a raw torch.save of CUDA tensors (e.g. a trainer's state) maps to the CPU too
    payload = checkpoint_dict(model)
    payload["state_dict"] = {k: v.cuda() for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "raw.pt")
    assert next(load_model(tmp_path / "raw.pt").parameters()).device.type == "cpu"
