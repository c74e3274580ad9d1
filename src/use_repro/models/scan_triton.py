"""Triton selective scan: the recurrence as two Triton kernels (forward, backward), wrapped as
an autograd function. The scan of CUDA machines without ``mamba_ssm``; no build step.

Same arguments, shapes and result as :func:`use_repro.models.mamba.selective_scan_ref`
(mamba_ssm's ``selective_scan_ref``): u, delta, z ``[B, D, L]``; A ``[D, N]`` (real); B, C
``[B, N, L]`` (input-dependent, "variable B/C"); D, delta_bias ``[D]``; returns ``[B, D, L]`` in
u's dtype. Computes in float32. The same split as the compiled CPU scan (:mod:`scan_cpu`): the
kernels do the recurrence alone,

    h[t] = exp(dt[t] * A) * h[t-1] + dt[t] * B[t] * u[t],    y[t] = <C[t], h[t]>

and the elementwise steps around it (dt = softplus(delta + delta_bias), + D u, * silu(z)) are
torch ops (``scan_steps.prepare`` / ``scan_steps.finish``), differentiated by autograd.

Kernels. One program per (batch row, block of ``BLOCK_D`` channels); all of a program's states
``[BLOCK_D, N]`` stay in registers during one sequential pass over time. The forward pass stores
``y`` and, every ``K`` steps, the state entering that chunk of time (the checkpoints,
``[B, D, ceil(L / K), N]``). The backward pass walks the chunks from the last one: it
recomputes the chunk's states from its checkpoint into a per-program scratch buffer
(``[B, D, K, N]`` in all, reused by every chunk), then runs the chunk backwards in time
carrying the adjoint of the state. So the memory is the inputs, the checkpoints
(B·D·(L/K)·N) and the scratch (B·D·K·N); with K ≈ sqrt(L) each is ~1/sqrt(L) of the
``[B, D, L, N]`` states an autograd scan would keep. Gradients shared by the channels (dB, dC:
``[B, N, L]``) are written per channel block and summed by torch (deterministic, no atomics);
dA per batch row and summed likewise.

Only plain ``tl.load`` / ``tl.store`` / ``tl.sum`` / ``tl.exp`` and ``range`` loops: what triton
3.6 (the GPU machines) compiles and the interpreter of triton >= 3.8 (numpy 2.4) runs.

CPU tensors run under Triton's interpreter when ``TRITON_INTERPRET=1`` is set before triton is
imported (the test suite's conftest does this on machines without CUDA): slow, but the same
kernel code, so parity is tested on every CI run without a GPU. Triton reads the variable when
it is imported (its own ``tl`` helpers are wrapped then), so this module imports triton only
when it is first asked for (:func:`_triton`), never on ``import``.
"""
from __future__ import annotations

import contextlib
import importlib
import math
import os
from functools import lru_cache

import torch

BLOCK_D = 32       # channels per program (d_inner 256 -> 8 programs per batch row)

# triton.language, the kernels' `tl`: bound by _triton() before they are jitted (their
# `tl.constexpr` annotations are strings, from __future__ annotations, which triton reads).
tl = None


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET=1`` is set now."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@lru_cache(maxsize=1)
def _triton():
    """(triton, whether it was imported under TRITON_INTERPRET=1, "") or (None, None, why not)."""
    global tl
    try:
        triton = importlib.import_module("triton")
        tl = importlib.import_module("triton.language")
    except Exception as err:  # ImportError, or a broken install
        return None, None, f"{type(err).__name__}: {err}"
    return triton, interpreting(), ""


def available() -> bool:
    """True when triton imports (the kernels then run on CUDA tensors, or on CPU tensors under
    ``TRITON_INTERPRET=1``)."""
    return _triton()[0] is not None


def unavailable_reason() -> str:
    return _triton()[2]


def version() -> str:
    triton = _triton()[0]
    return getattr(triton, "__version__", "") if triton is not None else ""


def default_chunk(length: int) -> int:
    """Steps between checkpoints, K: ~sqrt(L), which balances the checkpoints (L/K states per
    sequence and channel) against the backward pass's scratch (K states)."""
    return max(1, math.isqrt(max(length - 1, 0)) + 1)


# --------------------------------------------------------------------------------------------
# kernels (plain functions, wrapped by triton.jit at their first launch: _kernels)
# --------------------------------------------------------------------------------------------

def _scan_fwd(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, y_ptr, ck_ptr,
              dim, length, nstate, n_chunks, chunk,
              su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sa_d, sa_n,
              sb_b, sb_n, sb_l, sc_b, sc_n, sc_l, sy_b, sy_d, sy_l,
              BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    md, mn = d < dim, n < nstate
    m2 = md[:, None] & mn[None, :]
    A = tl.load(A_ptr + d[:, None] * sa_d + n[None, :] * sa_n, mask=m2, other=0.0)
    # checkpoints [B, D, n_chunks, N], contiguous
    ck = ck_ptr + ((b * dim + d[:, None]) * n_chunks) * nstate + n[None, :]
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for c in range(n_chunks):
        tl.store(ck + c * nstate, h, mask=m2)
        for i in range(chunk):
            t = c * chunk + i
            mt = t < length
            # past the end: dt = 0 (decay 1, input 0), so the state is left as it is
            dt = tl.load(dt_ptr + b * sdt_b + d * sdt_d + t * sdt_l, mask=md & mt, other=0.0)
            u = tl.load(u_ptr + b * su_b + d * su_d + t * su_l, mask=md & mt, other=0.0)
            bt = tl.load(B_ptr + b * sb_b + n * sb_n + t * sb_l, mask=mn & mt, other=0.0)
            ct = tl.load(C_ptr + b * sc_b + n * sc_n + t * sc_l, mask=mn & mt, other=0.0)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * bt[None, :]
            y = tl.sum(h * ct[None, :], axis=1)
            tl.store(y_ptr + b * sy_b + d * sy_d + t * sy_l, y, mask=md & mt)


def _scan_bwd(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, dy_ptr, ck_ptr, ws_ptr,
              du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr,
              dim, length, nstate, n_chunks, chunk, n_blocks,
              su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sa_d, sa_n,
              sb_b, sb_n, sb_l, sc_b, sc_n, sc_l, sdy_b, sdy_d, sdy_l,
              BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    blk = tl.program_id(1)
    d = blk * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    md, mn = d < dim, n < nstate
    m2 = md[:, None] & mn[None, :]
    A = tl.load(A_ptr + d[:, None] * sa_d + n[None, :] * sa_n, mask=m2, other=0.0)
    ck = ck_ptr + ((b * dim + d[:, None]) * n_chunks) * nstate + n[None, :]
    ws = ws_ptr + ((b * dim + d[:, None]) * chunk) * nstate + n[None, :]      # [B, D, K, N]
    # outputs: du, ddt [B, D, L] contiguous; dA [B, D, N]; dB, dC per channel block [B, blocks, N, L]
    row = (b * dim + d) * length
    part = ((b * n_blocks + blk) * nstate + n) * length
    g_next = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)      # exp(dt[t+1] A) * dL/dh[t+1]
    dA = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for cc in range(n_chunks):
        c = n_chunks - 1 - cc
        # recompute the chunk from its checkpoint, keeping the state entering every step
        h = tl.load(ck + c * nstate, mask=m2, other=0.0)
        for i in range(chunk):
            t = c * chunk + i
            mt = t < length
            tl.store(ws + i * nstate, h, mask=m2)
            dt = tl.load(dt_ptr + b * sdt_b + d * sdt_d + t * sdt_l, mask=md & mt, other=0.0)
            u = tl.load(u_ptr + b * su_b + d * su_d + t * su_l, mask=md & mt, other=0.0)
            bt = tl.load(B_ptr + b * sb_b + n * sb_n + t * sb_l, mask=mn & mt, other=0.0)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * bt[None, :]
        tl.debug_barrier()
        # the chunk backwards in time
        for ii in range(chunk):
            i = chunk - 1 - ii
            t = c * chunk + i
            mt = t < length
            h_prev = tl.load(ws + i * nstate, mask=m2, other=0.0)
            dt = tl.load(dt_ptr + b * sdt_b + d * sdt_d + t * sdt_l, mask=md & mt, other=0.0)
            u = tl.load(u_ptr + b * su_b + d * su_d + t * su_l, mask=md & mt, other=0.0)
            dy = tl.load(dy_ptr + b * sdy_b + d * sdy_d + t * sdy_l, mask=md & mt, other=0.0)
            bt = tl.load(B_ptr + b * sb_b + n * sb_n + t * sb_l, mask=mn & mt, other=0.0)
            ct = tl.load(C_ptr + b * sc_b + n * sc_n + t * sc_l, mask=mn & mt, other=0.0)
            a = tl.exp(dt[:, None] * A)
            dtu = dt * u
            h = a * h_prev + dtu[:, None] * bt[None, :]
            g = g_next + dy[:, None] * ct[None, :]                   # dL/dh[t]
            gb = tl.sum(g * bt[None, :], axis=1)
            gah = g * a * h_prev
            tl.store(du_ptr + row + t, dt * gb, mask=md & mt)
            tl.store(ddt_ptr + row + t, tl.sum(gah * A, axis=1) + u * gb, mask=md & mt)
            dA += gah * dt[:, None]
            tl.store(dB_ptr + part + t, tl.sum(g * dtu[:, None], axis=0), mask=mn & mt)
            tl.store(dC_ptr + part + t, tl.sum(h * dy[:, None], axis=0), mask=mn & mt)
            g_next = a * g
        tl.debug_barrier()   # the next chunk rewrites the scratch
    tl.store(dA_ptr + (b * dim + d[:, None]) * nstate + n[None, :], dA, mask=m2)


@lru_cache(maxsize=1)
def _kernels():
    """(forward, backward) wrapped by ``triton.jit``."""
    triton = _triton()[0]
    return triton.jit(_scan_fwd), triton.jit(_scan_bwd)


def _launch_checks(u: torch.Tensor) -> tuple:
    triton, interpret, reason = _triton()
    if triton is None:
        raise RuntimeError(f"the Triton selective scan needs triton ({reason})")
    if u.device.type != "cuda" and not interpret:
        raise RuntimeError("the Triton selective scan runs on CUDA tensors, or on CPU tensors under "
                           "TRITON_INTERPRET=1 set before triton is imported"
                           + (" (here it was set after)" if interpreting() else ""))
    if u.device.type == "cuda" and interpret:
        raise RuntimeError("triton was imported under TRITON_INTERPRET=1, so CUDA tensors would run in "
                           "its interpreter; unset it to run the compiled kernels")
    return _kernels()


def _block_n(nstate: int) -> int:
    """The states padded to a power of two (a Triton block size), at least 2."""
    return max(2, 1 << (nstate - 1).bit_length())


def _grid(batch: int, dim: int) -> tuple[int, int]:
    return batch, -(-dim // BLOCK_D)


def _device_guard(t: torch.Tensor):
    """Launch on the tensor's GPU (triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def scan_forward(u, dt, A, Bm, Cm, chunk: int):
    """y [B, D, L] and the checkpoints [B, D, ceil(L / chunk), N] (float32 inputs, any strides)."""
    fwd, _ = _launch_checks(u)
    batch, dim, length = u.shape
    nstate = A.shape[1]
    n_chunks = -(-length // chunk)
    y = torch.empty(batch, dim, length, device=u.device, dtype=torch.float32)
    ck = torch.empty(batch, dim, n_chunks, nstate, device=u.device, dtype=torch.float32)
    if length == 0 or batch == 0 or dim == 0:
        return y, ck
    with _device_guard(u):
        fwd[_grid(batch, dim)](
            u, dt, A, Bm, Cm, y, ck, dim, length, nstate, n_chunks, chunk,
            *u.stride(), *dt.stride(), *A.stride(), *Bm.stride(), *Cm.stride(), *y.stride(),
            BLOCK_D=BLOCK_D, BLOCK_N=_block_n(nstate))
    return y, ck


def scan_backward(u, dt, A, Bm, Cm, ck, dy, chunk: int):
    """du, ddt [B, D, L]; dA [D, N]; dB, dC [B, N, L] (float32)."""
    _, bwd = _launch_checks(u)
    batch, dim, length = u.shape
    nstate = A.shape[1]
    n_chunks = ck.shape[2]
    n_blocks = _grid(batch, dim)[1]
    f32 = dict(device=u.device, dtype=torch.float32)
    # every element is written by the kernel (program (b, block) writes its rows of each)
    du = torch.empty(batch, dim, length, **f32)
    ddt = torch.empty(batch, dim, length, **f32)
    dA = torch.empty(batch, dim, nstate, **f32)
    dB = torch.empty(batch, n_blocks, nstate, length, **f32)
    dC = torch.empty(batch, n_blocks, nstate, length, **f32)
    if length and batch and dim:
        ws = torch.empty(batch, dim, chunk, nstate, **f32)
        with _device_guard(u):
            bwd[(batch, n_blocks)](
                u, dt, A, Bm, Cm, dy, ck, ws, du, ddt, dA, dB, dC,
                dim, length, nstate, n_chunks, chunk, n_blocks,
                *u.stride(), *dt.stride(), *A.stride(), *Bm.stride(), *Cm.stride(), *dy.stride(),
                BLOCK_D=BLOCK_D, BLOCK_N=_block_n(nstate))
    return du, ddt, dA.sum(0), dB.sum(1), dC.sum(1)


class _ScanTriton(torch.autograd.Function):
    """The recurrence alone: (u, dt [B, D, L], A [D, N], B, C [B, N, L]) -> y [B, D, L]."""

    @staticmethod
    def forward(ctx, u, dt, A, Bm, Cm, chunk):
        y, ck = scan_forward(u, dt, A, Bm, Cm, chunk)
        ctx.save_for_backward(u, dt, A, Bm, Cm, ck)
        ctx.chunk = chunk
        return y

    @staticmethod
    def backward(ctx, dy):
        du, ddt, dA, dB, dC = scan_backward(*ctx.saved_tensors, dy.float(), ctx.chunk)
        return du, ddt, dA, dB, dC, None


def selective_scan_triton(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                          C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                          delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                          chunk: int | None = None) -> torch.Tensor:
    """Triton selective scan (arguments and result as ``selective_scan_ref``).

    u, delta, z: ``[B, D, L]``; A: ``[D, N]`` real; B, C: ``[B, N, L]``; D, delta_bias: ``[D]``.
    Returns ``[B, D, L]`` in u's dtype. Any strides (mamba's B and C are transposed views of
    the x_proj output; the kernels read them in place). ``chunk``: steps between the forward
    pass's checkpoints, K (default :func:`default_chunk`).
    """
    from use_repro.models.scan_steps import finish, prepare

    if A.is_complex():
        raise ValueError("the Triton selective scan supports real A only")
    dtype = u.dtype
    uf, dt = prepare(u, delta, delta_bias, delta_softplus)
    k = default_chunk(uf.shape[-1]) if chunk is None else max(1, int(chunk))
    y = _ScanTriton.apply(uf, dt, A.float(), B.float(), C.float(), k)
    return finish(y, uf, D, z, dtype)
