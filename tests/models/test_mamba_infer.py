"""The fused CPU inference forward of Mamba layers (models/mamba_infer.py,
csrc/mamba_infer_cpu.cpp): equal to the training forward within float32 resolution on every
shape it can meet, used only where it is asked for, and never under gradients.

Like the compiled scan it is part of the install; the tests FAIL when it cannot be built and are
skipped only where no C++ compiler exists.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from use_repro.models import mamba_infer, scan_cpu
from use_repro.models.mamba import Mamba
from use_repro.models.usemamba import BiMamba, USEMamba, USEMambaConfig


@pytest.fixture(scope="module")
def ext():
    if scan_cpu.compiler() is None:
        pytest.skip("no C++ compiler ($CXX or c++) on PATH: the inference kernels cannot be built here")
    module = scan_cpu.load_extension(build=True, source=scan_cpu.INFER_SOURCE)
    assert mamba_infer.available()
    return module


def _perturbed(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Parameters moved off their initialisation (A, D, dt bias and all), as a trained layer's are."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module.eval()


def _both(module, x):
    """(training forward, fused forward) of `module` on x, gradients off."""
    with torch.inference_mode():
        ref = module(x)
        with mamba_infer.fused_inference():
            fused = module(x)
    return ref, fused


# d_model 12 -> d_inner 48 (3 full vectors of 16), 20 -> 80; 9 -> 36 (not a multiple of 16);
# state 16 (the compile-time path) and 8 (the runtime one); L = 1 and lengths past a tile (32)
@pytest.mark.parametrize("batch,length,d_model,d_state", [
    (3, 37, 12, 16), (2, 70, 9, 16), (4, 1, 20, 16), (2, 33, 16, 8), (1, 5, 8, 4)])
def test_bidirectional_block_matches_the_training_forward(ext, batch, length, d_model, d_state):
    torch.manual_seed(1)
    block = _perturbed(BiMamba(d_model, d_state, 4, 4, 1e-5, "auto", True))
    x = torch.randn(batch, length, d_model)
    ref, fused = _both(block, x)
    assert fused.shape == ref.shape
    assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-5), (fused - ref).abs().max()


@pytest.mark.parametrize("bias", [False, True])
def test_single_layer_with_and_without_output_bias(ext, bias):
    """A Mamba layer alone (the residual-free path), out_proj with and without a bias."""
    torch.manual_seed(2)
    layer = _perturbed(Mamba(16, d_state=16, expand=2, bias=bias))
    x = torch.randn(2, 45, 16)
    ref, fused = _both(layer, x)
    assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-5), (fused - ref).abs().max()


def test_reverse_equals_flip_run_flip(ext):
    """The backward direction without flips: reverse kernels == flip, run, flip back."""
    torch.manual_seed(3)
    layer = _perturbed(Mamba(12, d_state=16, expand=4))
    x = torch.randn(3, 41, 12)
    with torch.inference_mode():
        expected = x + torch.flip(layer(torch.flip(x, dims=[1])), dims=[1])
        got = mamba_infer.mamba_forward(layer, x, reverse=True, residual=x)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5), (got - expected).abs().max()


def test_strong_decays_and_large_steps_stay_finite_and_equal(ext):
    """dt up to ~50 and |A| up to ~e^3: decays underflow to 0 in both forwards alike."""
    torch.manual_seed(4)
    layer = Mamba(8, d_state=16, expand=2).eval()
    with torch.no_grad():
        layer.dt_proj.bias.fill_(50.0)
        layer.A_log.add_(3.0)
    x = torch.randn(2, 40, 8) * 3
    ref, fused = _both(layer, x)
    assert torch.isfinite(fused).all()
    assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-5), (fused - ref).abs().max()


def test_whole_model_waveform_within_1e5(ext):
    """A USEMamba (2 TF blocks, release structure) on 0.3 s at 16 and 48 kHz."""
    torch.manual_seed(5)
    model = _perturbed(USEMamba(USEMambaConfig(num_blocks=2, channels=8, dense_depth=2)), scale=0.05)
    for fs in (16000, 48000):
        wav = torch.randn(1, int(0.3 * fs)) * 0.1
        with torch.inference_mode():
            ref = model.enhance_waveform(wav, fs)
            with mamba_infer.fused_inference():
                fused = model.enhance_waveform(wav, fs)
        assert (fused - ref).abs().max() < 1e-5 * max(1.0, ref.abs().max().item())


def test_not_used_under_gradients_or_outside_the_context(ext, monkeypatch):
    """Training (gradients on) and plain no-grad calls run the training forward, bit for bit."""
    calls = []
    real = mamba_infer.mamba_forward
    monkeypatch.setattr(mamba_infer, "mamba_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(6)
    block = _perturbed(BiMamba(8, 16, 4, 2, 1e-5, "auto", True))
    x = torch.randn(2, 20, 8)
    with mamba_infer.fused_inference():
        out = block(x)                       # gradients on: training forward
        out.sum().backward()
    with torch.no_grad():
        plain = block(x)                     # outside the context
    assert calls == []
    assert torch.equal(plain, out.detach())
    with torch.no_grad(), mamba_infer.fused_inference():
        block(x)
    assert len(calls) == 2                   # both directions
    assert not mamba_infer.requested()       # the context restores the previous state


def test_other_backends_and_missing_kernels_use_the_training_forward(ext, monkeypatch):
    layer = Mamba(8, d_state=16, expand=2, backend="torch").eval()
    x = torch.randn(1, 10, 8)
    with torch.no_grad(), mamba_infer.fused_inference():
        assert not layer.fused_inference_applies(x)          # torch scan asked for by name
        layer.backend = "auto"
        assert layer.fused_inference_applies(x)
        assert not layer.fused_inference_applies(x.double())
        monkeypatch.setattr(mamba_infer, "available", lambda: False)
        assert not layer.fused_inference_applies(x)


def test_enhancer_runs_the_fused_forward(ext, monkeypatch):
    """use-repro enhance's chunked path (normalized_call) enters fused_inference."""
    from use_repro.enhancer import normalized_call

    seen = []

    def fn(t, fs):
        seen.append(mamba_infer.requested() and not torch.is_grad_enabled())
        return t

    x = np.random.default_rng(0).standard_normal(800).astype(np.float32)
    y = normalized_call(fn, x, 16000, torch.device("cpu"))
    assert seen == [True]
    assert np.allclose(y, x, atol=1e-6)


def test_kernels_reject_bad_shapes(ext):
    x = torch.randn(2, 5, 16)
    with pytest.raises(RuntimeError, match="kernel width"):
        ext.conv_silu(x, torch.randn(16, 9), torch.empty(0), False)
    with pytest.raises(RuntimeError, match="x_dbl"):
        ext.scan_infer(x.contiguous(), torch.randn(2, 5, 7), torch.randn(16, 1), -torch.rand(16, 4),
                       torch.randn(16), x, torch.randn(16), False)


def test_sequence_chunks_cover_every_sequence_once():
    assert mamba_infer.sequence_chunks(10, 3, tokens=7) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert mamba_infer.sequence_chunks(4, 100, tokens=7) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert mamba_infer.sequence_chunks(0, 5) == []


def test_grouping_sequences_changes_no_number(ext, monkeypatch):
    """The fused forward in groups of sequences equals one call over all of them, bit for bit."""
    torch.manual_seed(7)
    model = _perturbed(USEMamba(USEMambaConfig(num_blocks=2, channels=8, dense_depth=2)), scale=0.05)
    wav = torch.randn(1, 9000) * 0.1
    outs = []
    for tokens in (10**9, 300, 1):
        monkeypatch.setattr(mamba_infer, "CHUNK_TOKENS", tokens)
        with torch.inference_mode(), mamba_infer.fused_inference():
            outs.append(model.enhance_waveform(wav, 16000))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
