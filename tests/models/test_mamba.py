"""Mamba: parameter names/shapes/init of mamba_ssm, and the parallel scan against the sequential one."""
from __future__ import annotations

import math

import pytest
import torch

from use_repro.models import scan_cpu
from use_repro.models.mamba import (MIN_CHUNKS, SLAB_ELEMENTS, Mamba, fused_available, resolve_backend,
                                    scan_chunks, selective_scan, selective_scan_ref, selective_scan_torch)

LENGTHS = (1, 3, 16, 37, 100, 257)


def scan_inputs(batch=2, dim=6, state=4, length=37, seed=0):
    """Random scan inputs at Mamba-like scales (S4D-real A, softplus(dt) ~ 0.001-0.1 and up)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, length, generator=g)
    delta = 0.5 * torch.randn(batch, dim, length, generator=g)
    A = -torch.arange(1, state + 1, dtype=torch.float32).repeat(dim, 1) * torch.exp(0.1 * torch.randn(dim, state, generator=g))
    B = torch.randn(batch, state, length, generator=g)
    C = torch.randn(batch, state, length, generator=g)
    D = torch.randn(dim, generator=g)
    z = torch.randn(batch, dim, length, generator=g)
    bias = torch.log(torch.expm1(torch.empty(dim).uniform_(0.001, 0.5, generator=g)))
    return [u, delta, A, B, C, D, z, bias]


@pytest.mark.parametrize("length", LENGTHS)
def test_torch_scan_matches_reference_output_and_gradients(length):
    xs = [x.requires_grad_(True) for x in scan_inputs(length=length, seed=length)]
    y_ref = selective_scan_ref(*xs[:7], delta_bias=xs[7], delta_softplus=True)
    g = torch.randn_like(y_ref)
    grads_ref = torch.autograd.grad((y_ref * g).sum(), xs)
    for chunks in (None, 1, 3):       # automatic, a single pass, and a forced chunked scan
        y = selective_scan_torch(*xs[:7], delta_bias=xs[7], delta_softplus=True, chunks=chunks)
        # at L = 1 the torch scan never uses A (its gradient is exactly 0)
        grads = torch.autograd.grad((y * g).sum(), xs, allow_unused=True, materialize_grads=True)
        torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
        for name, a, b in zip("u delta A B C D z delta_bias".split(), grads, grads_ref):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=lambda m, n=name: f"grad {n}: {m}")


def test_chunking_policy():
    assert scan_chunks(2, 64, 16, 400, threads=1) == 20       # small steps: ~sqrt(L) chunks
    assert scan_chunks(2, 64, 16, 1600, threads=1) == 32      # capped by the slab size
    assert scan_chunks(161, 256, 16, 400, threads=1) == 1     # each step already a big vector op
    assert scan_chunks(1, 8, 4, 3, threads=1) == 1            # too short to split


def test_chunking_threshold_is_strict():
    # a step of exactly SLAB_ELEMENTS * threads / MIN_CHUNKS elements is a large one: one chunk
    # (2 threads, 8 x 256 x 16 used to get 4 chunks, slower than the reference loop there)
    assert 8 * 256 * 16 * MIN_CHUNKS == SLAB_ELEMENTS * 2
    assert scan_chunks(8, 256, 16, 400, threads=2) == 1
    assert scan_chunks(8, 256, 16, 400, threads=3) == 3 * SLAB_ELEMENTS // (8 * 256 * 16)
    assert scan_chunks(7, 256, 16, 400, threads=2) == MIN_CHUNKS   # just below: chunked


def test_scan_without_optional_terms():
    u, delta, A, B, C, *_ = scan_inputs(length=20)
    torch.testing.assert_close(selective_scan_torch(u, delta, A, B, C), selective_scan_ref(u, delta, A, B, C),
                               atol=1e-4, rtol=1e-4)


def test_strong_decay_is_stable():
    # dt * |A| up to ~100 per step: exp underflows to 0, nothing overflows
    u, delta, A, B, C, D, z, bias = scan_inputs(length=64)
    A = A * 50
    ref = selective_scan_ref(u, delta + 3, A, B, C, D, z, bias, True)
    for chunks in (1, 4, 8):
        y = selective_scan_torch(u, delta + 3, A, B, C, D, z, bias, True, chunks=chunks)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)


def test_checkpointed_layer_same_gradients():
    # a Mamba layer recomputed in the backward pass gives the gradients of one that stores all
    torch.manual_seed(0)
    plain = Mamba(d_model=16, d_state=8, expand=2, backend="torch", checkpoint=False)
    recomputed = Mamba(d_model=16, d_state=8, expand=2, backend="torch", checkpoint=True)
    recomputed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 30, 16)
    grads = []
    for m in (plain, recomputed):
        xi = x.clone().requires_grad_(True)
        g = torch.autograd.grad(m(xi).sum(), [xi, *m.parameters()])
        grads.append(g)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_parameters_match_mamba_ssm():
    m = Mamba(d_model=64, d_state=16, d_conv=4, expand=4)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (512, 64), "conv1d.weight": (256, 1, 4), "conv1d.bias": (256,),
        "x_proj.weight": (36, 256), "dt_proj.weight": (256, 4), "dt_proj.bias": (256,),
        "A_log": (256, 16), "D": (256,), "out_proj.weight": (64, 256)}
    # mamba_ssm's initialisation: A = -(1..N), D = 1, softplus(dt bias) in [dt_min, dt_max]
    torch.testing.assert_close(m.A_log, torch.log(torch.arange(1, 17.0)).repeat(256, 1))
    assert torch.all(m.D == 1)
    dt = torch.nn.functional.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
    assert m.dt_proj.weight.abs().max() <= 4 ** -0.5


def test_backends_agree_in_the_block():
    torch.manual_seed(0)
    m = Mamba(d_model=8, d_state=4, expand=2)
    x = torch.randn(3, 21, 8)
    m.backend = "reference"
    y_ref = m(x)
    m.backend = "torch"
    torch.testing.assert_close(m(x), y_ref, atol=1e-5, rtol=1e-5)
    assert m(x).shape == x.shape


def test_auto_backend_on_cpu_is_compiled_scan_or_torch():
    # the compiled scan when it is available (tests/models/test_scan_cpu.py: it must be wherever
    # a compiler exists), else the pure-PyTorch scan
    assert resolve_backend("auto", torch.device("cpu")) == ("cpp" if scan_cpu.available() else "torch")
    with pytest.raises(RuntimeError):
        resolve_backend("fused", torch.device("cpu"))
    with pytest.raises(ValueError):
        resolve_backend("bogus", torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not fused_available(), reason="needs CUDA and mamba_ssm")
@pytest.mark.parametrize("length", [16, 400])
def test_fused_kernel_matches_torch_scan(length):
    xs = [x.cuda().requires_grad_(True) for x in scan_inputs(batch=4, dim=64, state=16, length=length)]
    y_f = selective_scan(*xs[:7], delta_bias=xs[7], delta_softplus=True, backend="fused")
    g = torch.randn_like(y_f)
    gf = torch.autograd.grad((y_f * g).sum(), xs)
    y_t = selective_scan(*xs[:7], delta_bias=xs[7], delta_softplus=True, backend="torch")
    gt = torch.autograd.grad((y_t * g).sum(), xs)
    torch.testing.assert_close(y_f, y_t, atol=1e-3, rtol=1e-3)
    for a, b in zip(gf, gt):
        scale = max(1.0, b.abs().max().item())
        assert (a - b).abs().max().item() <= 1e-3 * scale * math.sqrt(length)


@pytest.mark.gpu
@pytest.mark.skipif(not fused_available(), reason="needs CUDA and mamba_ssm")
def test_fused_and_torch_block_share_weights():
    torch.manual_seed(0)
    m = Mamba(d_model=64, d_state=16, expand=4).cuda()
    x = torch.randn(2, 100, 64, device="cuda")
    m.backend = "fused"
    y_f = m(x)
    m.backend = "torch"
    torch.testing.assert_close(y_f, m(x), atol=1e-3, rtol=1e-3)
