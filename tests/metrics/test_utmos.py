"""UTMOS22 strong (pure-torch re-implementation): checkpoint layout, strict loading, registry backend.

No real checkpoint can be fetched here, so the scoring tests use random weights saved in the
released file's layout; the full-size layout is checked against the key names and shapes of
SpeechMOS's `UTMOS22Strong` (whose `load_state_dict` reads `utmos22_strong_step7459_v1.pt`).
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

from use_repro.metrics import registry, utmos
from use_repro.metrics.nonintrusive import to_16k

# Small sizes for the scoring tests (the conv strides, hence the 50 Hz frame rate, stay real).
TINY = utmos.UTMOS22Config(conv_channels=16, dim=32, n_layers=2, n_heads=4, ffn_dim=64, pos_conv_kernel=16,
                           pos_conv_groups=4, domain_dim=8, judge_dim=8, lstm_hidden=16, proj_hidden=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def released_layout() -> dict[str, tuple[int, ...]]:
    """Every key and shape of the released state dict, written out from SpeechMOS's module tree
    (`speechmos/utmos22/strong/model.py`, `speechmos/utmos22/fairseq_alt.py`)."""
    w, e = "wav2vec2.", "wav2vec2.encoder."
    lay = {"domain_emb": (1, 128), "judge_emb": (1, 128), w + "mask_emb": (768,)}
    for i, k in enumerate([10, 3, 3, 3, 3, 2, 2]):
        lay[f"{w}feature_extractor.conv_layers.{i}.0.weight"] = (512, 1 if i == 0 else 512, k)
    lay[w + "feature_extractor.conv_layers.0.2.weight"] = lay[w + "feature_extractor.conv_layers.0.2.bias"] = (512,)
    lay[w + "layer_norm.weight"] = lay[w + "layer_norm.bias"] = (512,)
    lay[w + "post_extract_proj.weight"], lay[w + "post_extract_proj.bias"] = (768, 512), (768,)
    lay[e + "pos_conv.0.weight_g"], lay[e + "pos_conv.0.weight_v"] = (1, 1, 128), (768, 48, 128)
    lay[e + "pos_conv.0.bias"] = lay[e + "layer_norm.weight"] = lay[e + "layer_norm.bias"] = (768,)
    for i in range(12):
        p = f"{e}layers.{i}."
        for n in ("q", "k", "v", "out"):
            lay[f"{p}self_attn.{n}_proj.weight"], lay[f"{p}self_attn.{n}_proj.bias"] = (768, 768), (768,)
        lay[p + "fc1.weight"], lay[p + "fc1.bias"] = (3072, 768), (3072,)
        lay[p + "fc2.weight"], lay[p + "fc2.bias"] = (768, 3072), (768,)
        for n in ("self_attn_layer_norm", "final_layer_norm"):
            lay[f"{p}{n}.weight"] = lay[f"{p}{n}.bias"] = (768,)
    for sfx in ("", "_reverse"):
        lay[f"blstm.weight_ih_l0{sfx}"], lay[f"blstm.weight_hh_l0{sfx}"] = (2048, 1024), (2048, 512)
        lay[f"blstm.bias_ih_l0{sfx}"] = lay[f"blstm.bias_hh_l0{sfx}"] = (2048,)
    lay["projection.0.weight"], lay["projection.0.bias"] = (2048, 1024), (2048,)
    lay["projection.2.weight"], lay["projection.2.bias"] = (1, 2048), (1,)
    return lay


def test_full_model_expects_exactly_the_released_keys_and_shapes():
    with torch.device("meta"):  # the real 103M-parameter layout without allocating it
        model = utmos.UTMOS22Strong()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = released_layout()
    assert len(expected) == 225
    assert sorted(set(got) - set(expected)) == [] and sorted(set(expected) - set(got)) == []
    assert got == expected
    # A few of them literally, as SpeechMOS's checkpoint names them.
    for key, shape in [("wav2vec2.feature_extractor.conv_layers.0.0.weight", (512, 1, 10)),
                       ("wav2vec2.encoder.pos_conv.0.weight_v", (768, 48, 128)),
                       ("wav2vec2.encoder.layers.11.self_attn.out_proj.weight", (768, 768)),
                       ("blstm.weight_ih_l0_reverse", (2048, 1024)), ("projection.2.weight", (1, 2048))]:
        assert got[key] == shape
    assert utmos.UTMOS22_STRONG.receptive_field == 400


def test_weight_norm_keys_and_kernel_match_torchs_weight_norm():
    """The checkpoint's weight_g / weight_v were written by torch's `weight_norm(dim=2)`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = torch.nn.utils.weight_norm(torch.nn.Conv1d(8, 8, 6, padding=3, groups=2), name="weight", dim=2)
    with torch.no_grad():
        ref.weight_g.mul_(torch.linspace(0.5, 2.0, 6).view(1, 1, 6))
    ours = utmos.WeightNormConv1d(8, 6, groups=2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 8, 11)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


def _tiny_checkpoint(weights_dir, seed: int = 0, edit=None):
    torch.manual_seed(seed)
    state = utmos.UTMOS22Strong(TINY).state_dict()
    if edit:
        edit(state)
    path = weights_dir / "utmos" / utmos.CHECKPOINT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _speech_like(fs: int, seconds: float = 1.3, seed: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def test_registry_backend_scores_any_rate_deterministically(tmp_path, monkeypatch):
    monkeypatch.setattr(utmos, "UTMOS22_STRONG", TINY)
    path = _tiny_checkpoint(tmp_path)
    b = registry.resolve("UTMOS", tmp_path)
    assert b.available and b.paper and b.columns == ("UTMOS",)
    assert "UTMOS22 strong" in b.name and str(path) in b.name and b.version == utmos.CHECKPOINT_NAME
    scorer = b.make(1)
    scores = {}
    for fs in (8000, 16000, 48000):
        x = _speech_like(fs)
        s = scorer(x, fs)
        assert set(s) == {"UTMOS"} and math.isfinite(s["UTMOS"])
        assert scorer(x, fs)["UTMOS"] == s["UTMOS"]  # same input, same number
        with torch.inference_mode():  # the model sees the soxr-resampled 16 kHz signal
            direct = scorer.model(torch.from_numpy(to_16k(x, fs))[None])
        assert s["UTMOS"] == pytest.approx(float(direct[0]), abs=1e-6)
        scores[fs] = s["UTMOS"]
    noise = np.random.default_rng(5).standard_normal(16000).astype(np.float32) * 0.5
    assert scorer(noise, 16000)["UTMOS"] != pytest.approx(scores[16000], abs=1e-6)  # the input matters
    with pytest.raises(ValueError, match="too short"):
        scorer(np.zeros(399, np.float32), 16000)
    assert math.isfinite(scorer(np.zeros(400, np.float32), 16000)["UTMOS"])


def test_utterance_score_is_twice_the_mean_frame_score_plus_three():
    torch.manual_seed(3)
    model = utmos.UTMOS22Strong(TINY).eval()
    x = torch.from_numpy(_speech_like(16000))[None]
    with torch.inference_mode():
        frames = model.frame_scores(x)
        assert frames.shape == (1, 64)  # 1.3 s at 16 kHz -> 64 frames at 50 Hz
        assert float(model(x)[0]) == pytest.approx(float(frames.mean()) * 2 + 3, abs=1e-5)
        model.projection[2].weight.zero_()
        model.projection[2].bias.fill_(0.25)
        assert float(model(x)[0]) == pytest.approx(3.5, abs=1e-6)


def test_bad_checkpoints_fail_naming_the_file_and_keys(tmp_path):
    wd = tmp_path / "missing"
    path = _tiny_checkpoint(wd, edit=lambda s: s.pop("blstm.weight_hh_l0_reverse"))
    with pytest.raises(utmos.UTMOSCheckpointError) as e:
        utmos.load_utmos22_strong(path, TINY)
    assert str(path) in str(e.value) and "missing keys: blstm.weight_hh_l0_reverse" in str(e.value)

    def extra_and_wrong_shape(s):
        s["wav2vec2.encoder.layers.0.self_attn.in_proj_weight"] = torch.zeros(3)
        s["judge_emb"] = torch.zeros(2, TINY.judge_dim)

    path = _tiny_checkpoint(tmp_path / "extra", edit=extra_and_wrong_shape)
    with pytest.raises(utmos.UTMOSCheckpointError, match="unexpected keys: wav2vec2.encoder.layers.0.self_attn."
                                                          r"in_proj_weight.*judge_emb \(2, 8\) \(expected \(1, 8\)\)"):
        utmos.load_utmos22_strong(path, TINY)

    lightning = tmp_path / "lightning" / utmos.CHECKPOINT_NAME
    lightning.parent.mkdir()
    torch.save({"output_layers.0.judge_embedding.weight": torch.zeros(3000, 128)}, lightning)
    with pytest.raises(utmos.UTMOSCheckpointError, match="original UTMOS22 Lightning checkpoint"):
        utmos.load_utmos22_strong(lightning, TINY)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(utmos.UTMOSCheckpointError, match=re.escape(f"{junk}: cannot be read")):
        utmos.load_utmos22_strong(junk, TINY)


def test_registry_load_error_and_na_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(utmos, "UTMOS22_STRONG", TINY)
    path = _tiny_checkpoint(tmp_path, edit=lambda s: s.pop("projection.0.bias"))
    b = registry.resolve("UTMOS", tmp_path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*missing keys: projection.0.bias"):
        b.make(1)
    none = registry.resolve("UTMOS", tmp_path / "empty")
    assert not none.available and "utmos22_strong_step7459_v1.pt" in none.na_reason
    assert "DistillMOS" in none.na_reason
