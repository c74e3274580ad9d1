"""The compiled CPU selective scan: built by the install, equal to the sequential reference in
output and every gradient, dispatched by ``auto`` on the CPU, and a logged fallback without it.

The extension is part of the install (``make env`` builds it). These tests load it, building it
if needed, and FAIL when it cannot be built; they are skipped only where no C++ compiler exists
(the one case where the pure-PyTorch fallback is the intended install), and the skip says so.
"""
from __future__ import annotations

import logging

import pytest
import torch

from use_repro.models import mamba, scan_cpu
from use_repro.models.mamba import Mamba, resolve_backend, selective_scan, selective_scan_ref
from use_repro.models.scan_cpu import selective_scan_cpu

from .test_mamba import scan_inputs

NAMES = "u delta A B C D z delta_bias".split()

needs_compiler = pytest.mark.skipif(
    scan_cpu.compiler() is None,
    reason="no C++ compiler ($CXX or c++) on PATH: the compiled CPU scan cannot be built here; "
           "the pure-PyTorch scan is the fallback")


@pytest.fixture(scope="module")
def ext():
    """The built extension; a failed build fails the test (it is part of the install)."""
    if scan_cpu.compiler() is None:
        pytest.skip("no C++ compiler ($CXX or c++) on PATH: the compiled CPU scan cannot be built here")
    return scan_cpu.load_extension(build=True)


def _ref_and_cpp(xs, g, delta_softplus=True, optional=True):
    """Outputs and gradients of the reference and the compiled scan for the same inputs."""
    u, delta, A, B, C, D, z, bias = xs
    kw = dict(D=D, z=z, delta_bias=bias) if optional else {}
    wrt = xs if optional else xs[:5]
    out = []
    for fn in (selective_scan_ref, selective_scan_cpu):
        y = fn(u, delta, A, B, C, delta_softplus=delta_softplus, **kw)
        out.append((y, torch.autograd.grad((y * g).sum(), wrt)))
    return out


def _assert_grads_close(grads, grads_ref, tol):
    for name, a, b in zip(NAMES, grads, grads_ref):
        # gradients of shared parameters are sums over B * L terms: tolerance relative to their scale
        scale = max(1.0, b.abs().max().item())
        torch.testing.assert_close(a, b, atol=tol * scale, rtol=tol,
                                   msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("batch,dim,state,length", [
    (2, 6, 4, 1), (2, 6, 4, 3), (1, 5, 16, 37), (3, 8, 16, 100), (2, 4, 7, 257), (5, 3, 1, 20)])
def test_matches_reference_output_and_gradients(ext, batch, dim, state, length):
    xs = [x.requires_grad_(True) for x in scan_inputs(batch, dim, state, length, seed=length)]
    g = torch.randn(batch, dim, length, generator=torch.Generator().manual_seed(1))
    (y_ref, g_ref), (y, grads) = _ref_and_cpp(xs, g)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    _assert_grads_close(grads, g_ref, 1e-5)


@pytest.mark.parametrize("delta_softplus,optional", [(False, True), (True, False), (False, False)])
def test_matches_reference_without_optional_terms(ext, delta_softplus, optional):
    xs = scan_inputs(2, 6, 4, 50, seed=3)
    if not delta_softplus:
        # positive step sizes, as softplus would give (negative ones make the recurrence grow)
        xs[1], xs[7] = xs[1].abs(), xs[7].exp()
    xs = [x.requires_grad_(True) for x in xs]
    g = torch.randn(2, 6, 50, generator=torch.Generator().manual_seed(2))
    (y_ref, g_ref), (y, grads) = _ref_and_cpp(xs, g, delta_softplus, optional)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    _assert_grads_close(grads, g_ref, 1e-5)


def test_strong_decay_and_large_step_sizes(ext):
    # dt |A| up to ~100 per step (decays underflow to 0) and delta + bias > 20 (softplus = identity)
    xs = scan_inputs(2, 6, 4, 64, seed=5)
    xs[2] = xs[2] * 50
    xs[1] = xs[1] + 3
    xs[1][:, :2] += 25
    xs = [x.requires_grad_(True) for x in xs]
    g = torch.randn(2, 6, 64, generator=torch.Generator().manual_seed(3))
    (y_ref, g_ref), (y, grads) = _ref_and_cpp(xs, g)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    _assert_grads_close(grads, g_ref, 1e-5)


def test_gradcheck_float64(ext):
    xs = [x.double().requires_grad_(True) for x in scan_inputs(2, 3, 4, 9, seed=7)]

    def fn(u, delta, A, B, C, D, z, bias):
        return selective_scan_cpu(u, delta, A, B, C, D, z, bias, delta_softplus=True)

    assert torch.autograd.gradcheck(fn, xs, eps=1e-6, atol=1e-7, rtol=1e-5)
    plain = [x.double().requires_grad_(True) for x in scan_inputs(1, 2, 3, 6, seed=8)[:5]]
    assert torch.autograd.gradcheck(lambda *a: selective_scan_cpu(*a), plain, eps=1e-6, atol=1e-7)


def test_gradients_do_not_depend_on_thread_count(ext):
    # dB and dC are summed over per-task buffers: the split must not change the result
    xs = [x.requires_grad_(True) for x in scan_inputs(3, 10, 16, 40, seed=9)]
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            y = selective_scan_cpu(*xs[:7], delta_bias=xs[7], delta_softplus=True)
            results.append((y, torch.autograd.grad(y.square().sum(), xs)))
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(results[0][0], results[1][0], atol=0, rtol=0)
    _assert_grads_close(results[1][1], results[0][1], 1e-6)


def test_low_precision_inputs_come_back_in_their_dtype(ext):
    xs = scan_inputs(2, 6, 4, 20, seed=11)
    ref = selective_scan_ref(*xs[:7], delta_bias=xs[7], delta_softplus=True)
    y = selective_scan_cpu(*[x.to(torch.bfloat16) for x in xs[:7]], delta_bias=xs[7], delta_softplus=True)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, atol=0.1, rtol=0.05)
    with torch.inference_mode():
        torch.testing.assert_close(selective_scan_cpu(*xs[:7], delta_bias=xs[7], delta_softplus=True),
                                   ref, atol=1e-5, rtol=1e-5)


def test_mamba_block_with_compiled_scan_matches_reference(ext):
    torch.manual_seed(0)
    m = Mamba(d_model=16, d_state=8, expand=2, backend="reference", checkpoint=False)
    x = torch.randn(3, 25, 16, requires_grad=True)
    y_ref = m(x)
    g_ref = torch.autograd.grad(y_ref.sum(), [x, *m.parameters()])
    m.backend = "cpp"
    y = m(x)
    grads = torch.autograd.grad(y.sum(), [x, *m.parameters()])
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5 * max(1.0, b.abs().max().item()), rtol=1e-5)


def test_auto_backend_picks_compiled_scan_on_cpu(ext):
    assert resolve_backend("auto", torch.device("cpu")) == "cpp"
    xs = scan_inputs(2, 6, 4, 30, seed=12)
    torch.testing.assert_close(selective_scan(*xs[:7], delta_bias=xs[7], delta_softplus=True, backend="auto"),
                               selective_scan_ref(*xs[:7], delta_bias=xs[7], delta_softplus=True),
                               atol=1e-5, rtol=1e-5)


def test_unavailable_extension_falls_back_to_torch_and_says_so_once(monkeypatch, caplog):
    def broken(build=True, verbose=False):
        raise RuntimeError("simulated build failure")

    monkeypatch.setattr(scan_cpu, "load_extension", broken)
    scan_cpu._extension.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=scan_cpu.__name__):
            assert resolve_backend("auto", torch.device("cpu")) == "torch"
            assert resolve_backend("auto", torch.device("cpu")) == "torch"
            with pytest.raises(RuntimeError, match="cpp"):
                resolve_backend("cpp", torch.device("cpu"))
        warnings = [r for r in caplog.records if "pure-PyTorch scan" in r.getMessage()]
        assert len(warnings) == 1 and "simulated build failure" in warnings[0].getMessage()
    finally:
        scan_cpu._extension.cache_clear()   # the next user loads the real extension again


def test_build_is_specific_to_source_cpu_and_folder(monkeypatch, tmp_path):
    name = scan_cpu.module_name()
    monkeypatch.setattr(scan_cpu, "cpu_identity", lambda: "another CPU")
    assert scan_cpu.module_name() != name          # another CPU builds its own (-march=native)
    monkeypatch.setenv("USE_REPRO_EXT_DIR", str(tmp_path))
    assert scan_cpu.build_dir() == tmp_path
    with pytest.raises(ImportError, match="not built"):
        scan_cpu.load_extension(build=False)        # nothing built in the empty folder


@needs_compiler
def test_build_command_reports_built(ext, capsys):
    assert scan_cpu.main([]) == 0
    assert "built" in capsys.readouterr().out
    assert mamba.BACKENDS.count("cpp") == 1


def test_a_build_leaves_the_flags_and_so_the_module_names_alone(monkeypatch, tmp_path):
    """torch's build appends to the flag lists it is given; ours must not change, or every
    later lookup in the process would look for a differently named (unbuilt) extension."""
    seen = {}

    def fake_load(name, sources, extra_cflags, extra_ldflags, build_directory, verbose):
        extra_cflags.append("-Dmutated")
        extra_ldflags.append("-lmutated")
        seen["called"] = True
        raise RuntimeError("stop after the call")

    import torch.utils.cpp_extension as cpp_extension

    before = (scan_cpu.module_name(), scan_cpu.module_name(scan_cpu.INFER_SOURCE))
    monkeypatch.setattr(cpp_extension, "load", fake_load)
    monkeypatch.setenv("USE_REPRO_EXT_DIR", str(tmp_path))
    monkeypatch.setattr(scan_cpu, "compiler", lambda: "c++")
    with pytest.raises(RuntimeError, match="stop after the call"):
        scan_cpu.load_extension(build=True)
    assert seen["called"]
    assert (scan_cpu.module_name(), scan_cpu.module_name(scan_cpu.INFER_SOURCE)) == before
