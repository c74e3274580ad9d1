"""The Triton selective scan against the reference, on every run.

Without a GPU the kernels run on CPU tensors in Triton's interpreter: tests/conftest.py sets
``TRITON_INTERPRET=1`` before anything imports triton (triton reads it on import). With CUDA the
same tests run the compiled kernels on the GPU (``bench/gpu_check.py`` runs them there).

triton is a declared test dependency on Linux x86_64: there a missing triton fails these tests
instead of skipping them.
"""
from __future__ import annotations

import math
import os
import platform

import pytest
import torch

from use_repro.models import mamba, scan_cpu, scan_triton
from use_repro.models.mamba import Mamba, resolve_backend, selective_scan_ref
from use_repro.models.scan_triton import selective_scan_triton

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# where `pip install -e .[test]` installs triton (pyproject.toml): its absence is an install error
TRITON_DECLARED = platform.system() == "Linux" and platform.machine() == "x86_64"
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


@pytest.fixture(autouse=True, scope="module")
def _needs_triton():
    if not scan_triton.available():
        if TRITON_DECLARED:
            pytest.fail(f"triton is a test dependency (pyproject.toml `test` extra) but does not import: "
                        f"{scan_triton.unavailable_reason()}")
        pytest.skip(f"triton is not installable on {platform.system()} {platform.machine()}")
    if DEVICE.type == "cpu" and not scan_triton._triton()[1]:
        pytest.fail("TRITON_INTERPRET=1 was not set when triton was imported (tests/conftest.py sets it)")


def _inputs(batch, dim, state, length, seed=0, extras=True):
    """The scan's eight inputs (float32, on DEVICE, requiring gradients); D, z, delta_bias None
    without ``extras``."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(DEVICE).requires_grad_()

    u, delta = r(batch, dim, length), r(batch, dim, length, scale=0.5)
    A = (-(torch.rand(dim, state, generator=g) * 2 + 0.2)).to(DEVICE).requires_grad_()   # real A < 0
    B, C = r(batch, state, length), r(batch, state, length)
    if not extras:
        return [u, delta, A, B, C, None, None, None]
    return [u, delta, A, B, C, r(dim), r(batch, dim, length), r(dim, scale=0.3, shift=-1.0)]


def _clone(xs):
    return [None if x is None else x.detach().clone().requires_grad_() for x in xs]


def _check_parity(xs, softplus, chunk=None):
    ref_in, tri_in = _clone(xs), _clone(xs)
    y_ref = selective_scan_ref(*ref_in[:7], delta_bias=ref_in[7], delta_softplus=softplus)
    y_tri = selective_scan_triton(*tri_in[:7], delta_bias=tri_in[7], delta_softplus=softplus, chunk=chunk)
    torch.testing.assert_close(y_tri, y_ref, rtol=1e-5, atol=1e-5)
    dy = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    y_ref.backward(dy)
    y_tri.backward(dy)
    checked = []
    for name, a, b in zip(NAMES, ref_in, tri_in):
        if a is None:
            continue
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"d{n}: {m}")
        checked.append(name)
    return checked


def test_parity_edges_all_eight_gradients():
    # D = 37: two channel blocks of 32, the second mostly padding; L = 23 with K = 5: the last
    # chunk is 3 steps; delta bias + softplus; batch 2; real A; D and the z gate
    checked = _check_parity(_inputs(2, 37, 16, 23), softplus=True, chunk=5)
    assert checked == list(NAMES)


def test_parity_plain_scan_odd_state_count_and_chunk_longer_than_sequence():
    # N = 5 (padded to 8 in the kernel), K = 16 > L = 9: one partial chunk; no bias, no softplus
    assert _check_parity(_inputs(3, 8, 5, 9, seed=2, extras=False), softplus=False, chunk=16) == \
        ["u", "delta", "A", "B", "C"]


def test_parity_default_chunk_longer_sequence():
    # L = 70: the default K = 9 leaves a last chunk of 7 steps
    assert scan_triton.default_chunk(70) == 9
    _check_parity(_inputs(1, 33, 16, 70, seed=3), softplus=True)


def test_checkpoint_interval_does_not_change_results():
    """The backward pass recomputes each chunk from its checkpoint with the forward's exact
    arithmetic, so K changes memory only: outputs and gradients are bit-identical."""
    xs = _inputs(2, 5, 4, 13, seed=4)
    outs = []
    for chunk in (1, 4, 13, 20):
        ins = _clone(xs)
        y = selective_scan_triton(*ins[:7], delta_bias=ins[7], delta_softplus=True, chunk=chunk)
        y.sum().backward()
        outs.append([y.detach()] + [x.grad for x in ins])
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert torch.equal(a, b)


def test_memory_is_inputs_plus_checkpoints():
    """What the kernel keeps for the backward pass: its inputs and [B, D, ceil(L/K), N]
    checkpoints, never a [B, D, L, N] tensor."""
    batch, dim, state, length, chunk = 2, 6, 4, 30, 7
    u, delta, A, B, C, *_ = _inputs(batch, dim, state, length, seed=5, extras=False)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        y = scan_triton._ScanTriton.apply(u, delta, A, B, C, chunk)
    inputs = [tuple(t.shape) for t in (u, delta, A, B, C)]
    assert sorted(saved) == sorted(inputs + [(batch, dim, math.ceil(length / chunk), state)])
    y.sum().backward()


def test_mamba_layer_layout_matches_reference():
    """The Mamba layer passes B and C as transposed views of x_proj's output (strided): the
    kernels read them in place. Every parameter's gradient and the input's agree."""
    torch.manual_seed(0)
    layers = {name: Mamba(8, d_state=4, expand=2, backend=name, checkpoint=True).to(DEVICE)
              for name in ("reference", "triton")}
    layers["triton"].load_state_dict(layers["reference"].state_dict())
    x = torch.randn(2, 11, 8, device=DEVICE)
    grads = {}
    for name, layer in layers.items():
        xi = x.clone().requires_grad_()
        y = layer(xi)
        y.square().sum().backward()
        grads[name] = (y.detach(), xi.grad, {k: p.grad for k, p in layer.named_parameters()})
    torch.testing.assert_close(grads["triton"][0], grads["reference"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads["triton"][1], grads["reference"][1], rtol=1e-5, atol=1e-5)
    for k, g in grads["reference"][2].items():
        torch.testing.assert_close(grads["triton"][2][k], g, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


# The interpreter accepts code the compiler may refuse: compile both kernels ahead of time for
# an H100/H200 (sm_90) with the installed triton and its bundled ptxas; no GPU is needed. A
# fresh process, because the compiler needs triton imported without TRITON_INTERPRET.
AOT_SCRIPT = """
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, compile
from use_repro.models import scan_triton as st
assert st.available() and not st._triton()[1]
for fn in st._kernels():
    sig = {a: "constexpr" if a.startswith("BLOCK_") else ("*fp32" if a.endswith("_ptr") else "i32")
           for a in fn.arg_names}
    k = compile(ASTSource(fn=fn, signature=sig, constexprs={"BLOCK_D": st.BLOCK_D, "BLOCK_N": 16}),
                target=GPUTarget("cuda", 90, 32))
    assert k.asm["cubin"] and "ld.local" not in k.asm["ptx"], fn.__name__   # no register spills
    print(fn.__name__, "ok")
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the tests above compile and run the kernels")
def test_kernels_compile_for_sm90_without_a_gpu(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")
    r = subprocess.run([sys.executable, "-c", AOT_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.split() == ["_scan_fwd", "ok", "_scan_bwd", "ok"], r.stdout + r.stderr[-3000:]


# -- backend choice (no kernel runs) ---------------------------------------------------------

@pytest.mark.parametrize("fused, triton_ok, cpp, device, expected", [
    (True, True, True, "cuda", "fused"),
    (False, True, True, "cuda", "triton"),
    (False, False, True, "cuda", "torch"),
    (True, True, True, "cpu", "cpp"),
    (True, True, False, "cpu", "torch"),
])
def test_auto_backend_choice(monkeypatch, fused, triton_ok, cpp, device, expected):
    monkeypatch.setattr(mamba, "_fused_scan_fn", lambda: (lambda *a, **k: None) if fused else None)
    monkeypatch.setattr(scan_triton, "available", lambda: triton_ok)
    monkeypatch.setattr(scan_cpu, "available", lambda: cpp)
    assert resolve_backend("auto", torch.device(device)) == expected


def test_named_triton_backend_needs_cuda_or_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="triton"):
        resolve_backend("triton", torch.device("cpu"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", torch.device("cpu")) == "triton"
    monkeypatch.setattr(scan_triton, "available", lambda: False)
    with pytest.raises(RuntimeError, match="needs triton"):
        resolve_backend("triton", torch.device("cuda"))


def test_model_scan_backends_and_label(monkeypatch):
    monkeypatch.setattr(scan_cpu, "available", lambda: True)
    model = torch.nn.Sequential(Mamba(8, d_state=4, backend="auto"), Mamba(8, d_state=4, backend="torch"))
    assert mamba.model_scan_backends(model, "cpu") == ["cpp", "torch"]
    assert mamba.backend_label("triton") == f"triton (triton {scan_triton.version()})"
