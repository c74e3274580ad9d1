"""The authors' released USEMamba (RE-USE): names and shapes, strict loading both ways, enhance."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from use_repro.audio.stft import RATES, mag_pha_istft, mag_pha_stft, stft_config
from use_repro.cli import main
from use_repro.data.dataset import unit_rms_gain
from use_repro.models.checkpoint import load_checkpoint, load_model
from use_repro.models.released import (RELEASE_STFT, ReleasedCheckpointError, ReleasedUSEMamba,
                                       config_from_state_dict, load_released, read_release_state_dict,
                                       save_released, silence_sparse_frames)
from use_repro.models.usemamba import PAPER_REGRESSION, USEMamba

from .reuse_release_keys import (RELEASE_KEYS, RELEASE_PARAMETERS, RELEASE_PREFIX_COUNTS,
                                 RELEASE_TENSORS)

SMALL = dict(num_blocks=2, channels=8, d_state=4, d_conv=4, expand=2, dense_depth=2)


def test_fixture_agrees_with_the_ports_summary():
    assert len(RELEASE_KEYS) == RELEASE_TENSORS
    assert sum(math.prod(s) for s in RELEASE_KEYS.values()) == RELEASE_PARAMETERS
    counts = {p: sum(k.startswith(p + ".") for k in RELEASE_KEYS) for p in RELEASE_PREFIX_COUNTS}
    assert counts == RELEASE_PREFIX_COUNTS


def test_paper_model_has_the_release_names_and_shapes():
    # ours -> release: every state-dict key of the paper's regression model is a release key
    # with the release's shape, and nothing else
    model = USEMamba(PAPER_REGRESSION)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == RELEASE_KEYS
    assert sum(p.numel() for p in model.parameters()) == 9_607_747
    assert model.config.mag_mode == "mapping" and model.config.pha_mode == "mapping"


@pytest.mark.parametrize("container", ["pth", "safetensors"])
def test_release_file_built_from_the_fixture_loads_strictly(tmp_path, container):
    # release -> ours: a file holding exactly the transcribed tensors (values random) loads
    # strictly, every tensor lands where its name says, and the sizes are read off the shapes
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) for k, s in RELEASE_KEYS.items()}
    path = tmp_path / ("g_01134000.pth" if container == "pth" else "model.safetensors")
    if container == "pth":
        torch.save({"generator": state, "steps": 1134000}, path)   # the trainer's layout
    else:
        holder = USEMamba(PAPER_REGRESSION)
        holder.load_state_dict(state)
        save_released(path, holder, container="safetensors")
    model = load_model(path)
    assert isinstance(model, ReleasedUSEMamba) and not model.training
    assert model.config.to_dict() == PAPER_REGRESSION.to_dict()
    own = model.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in RELEASE_KEYS)


def test_model_info_prints_the_release_count_and_tensors(capsys):
    assert main(["model-info", "--paper", "--model", "regression"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"USEMamba\s+9,607,747 parameters", out)
    assert "released checkpoint (RE-USE): 9,607,747 -> equal to it" in out
    listed = dict((m.group(1), tuple(int(x) for x in re.findall(r"\d+", m.group(2))))
                  for m in re.finditer(r"^    (\S+) (\([\d, ]*\))$", out, re.M))
    assert listed == RELEASE_KEYS


def test_strict_errors_name_the_file_and_the_keys(tmp_path):
    torch.manual_seed(0)
    state = USEMamba(SMALL).state_dict()
    bad = dict(state)
    del bad["mask_decoder.final_conv.bias"]
    bad["TSMamba.0.time_mamba.extra.weight"] = torch.zeros(3)
    bad["phase_decoder.phase_conv_i.weight"] = torch.zeros(1, 8, 1, 3)
    torch.save({"generator": bad}, tmp_path / "bad.pth")
    with pytest.raises(ReleasedCheckpointError) as e:
        load_model(tmp_path / "bad.pth")
    msg = str(e.value)
    assert str(tmp_path / "bad.pth") in msg
    assert "1 missing: mask_decoder.final_conv.bias" in msg
    assert "1 unexpected: TSMamba.0.time_mamba.extra.weight" in msg
    assert "1 wrong-shape: phase_decoder.phase_conv_i.weight (1, 8, 1, 3) (model: (1, 8, 1, 1))" in msg
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "absent.pth"))):
        load_released(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "absent.pth"))):
        load_model(tmp_path / "absent.pth")
    torch.save({"generator": {"a": 1}}, tmp_path / "odd.pth")
    with pytest.raises(ReleasedCheckpointError, match="odd.pth: entries that are not tensors: a"):
        read_release_state_dict(tmp_path / "odd.pth")


def test_sizes_are_read_off_the_shapes():
    torch.manual_seed(0)
    model = USEMamba(SMALL, time_stride=2, freq_stride=3)
    cfg = config_from_state_dict(model.state_dict())
    for key in ("num_blocks", "channels", "d_state", "d_conv", "expand", "dense_depth", "in_channels",
                "time_stride", "freq_stride"):
        assert getattr(cfg, key) == getattr(model.config, key), key


def test_the_release_stft_is_ours_at_every_rate():
    # the release scales its 8 kHz settings as even(x * fs // 8000) (its inference.py)
    def even(v):
        v = int(round(v))
        return v if v % 2 == 0 else v + 1

    base = RELEASE_STFT["sampling_rate"]
    for fs in RATES:
        ours = stft_config(fs)
        theirs = tuple(even(RELEASE_STFT[k] * fs // base) for k in ("n_fft", "hop_size", "win_size"))
        assert ours == theirs, fs


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    torch.manual_seed(3)
    model = USEMamba(SMALL).eval()
    with torch.no_grad():                 # non-trivial heads (the release's mapping outputs)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = save_released(tmp_path_factory.mktemp("rel") / "g_00000100.pth", model)
    return model, path


def test_release_file_of_our_model_round_trips(small_release, tmp_path):
    model, path = small_release
    assert set(torch.load(path, weights_only=True)) == {"generator"}
    loaded, extra = load_checkpoint(path)
    assert extra == {}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    save_released(tmp_path / "m.safetensors", model, container="safetensors")
    assert all(torch.equal(a, b) for a, b in
               zip(model.state_dict().values(), read_release_state_dict(tmp_path / "m.safetensors").values()))


def test_silence_sparse_frames_is_the_release_post_filter():
    mag_c = torch.tensor([[[0.5, 0.0, 0.2, -1.0],
                           [0.5, -0.1, 0.3, 0.0],
                           [0.5, 0.0, -0.3, 0.4]]])           # [B 1, F 3, N 4]
    # frame shares of bins <= 0: 0, 1, 1/3, 2/3 -> frames 1 and 3 silenced
    out = silence_sparse_frames(mag_c)
    keep = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert torch.equal(out, mag_c * keep)


def _release_reference(model: USEMamba, x: np.ndarray, fs: int) -> np.ndarray:
    """What enhance should write: our model's own forward at unit RMS (enhance's input scaling),
    the release's post-filter, iSTFT, scaled back."""
    gain = unit_rms_gain(x)
    w = torch.from_numpy(x * gain)[None]
    with torch.no_grad():
        mag_c, pha, _ = mag_pha_stft(w, fs)
        out_mag_c, out_pha, _ = model(mag_c, pha)
        y = mag_pha_istft(silence_sparse_frames(out_mag_c), out_pha, fs, w.shape[-1])
    return y[0].numpy() / gain


def test_enhance_runs_a_release_file_at_every_rate_as_our_forward(small_release, tmp_path):
    model, path = small_release
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    g = np.random.default_rng(0)
    inputs = {}
    for fs in RATES:
        x = (0.1 * g.standard_normal(int(0.12 * fs))).astype(np.float32)
        sf.write(src / f"x{fs}.wav", x, fs, subtype="FLOAT")     # float: no quantisation either way
        inputs[fs] = x
    assert main(["enhance", "--checkpoint", str(path), "--in", str(src), "--out", str(out),
                 "--device", "cpu"]) == 0
    for fs, x in inputs.items():
        y, rate = sf.read(out / f"x{fs}.wav", dtype="float32")
        assert rate == fs and y.shape == x.shape
        ref = _release_reference(model, x, fs)
        assert np.abs(ref).max() > 0
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_paper_size_release_file_enhances(tmp_path):
    torch.manual_seed(0)
    model = USEMamba(PAPER_REGRESSION).eval()
    path = save_released(tmp_path / "g.pth", model)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    x = (0.1 * np.random.default_rng(1).standard_normal(800)).astype(np.float32)
    sf.write(src / "a.wav", x, 16000, subtype="FLOAT")
    assert main(["enhance", "--checkpoint", str(path), "--in", str(src), "--out", str(out), "--device", "cpu"]) == 0
    y, _ = sf.read(out / "a.wav", dtype="float32")
    ref = _release_reference(model, x, 16000)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
