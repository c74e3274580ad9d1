"""Fused inference forward of a Mamba layer on the CPU: what `use-repro enhance` runs.

A Mamba layer's training forward (:meth:`use_repro.models.mamba.Mamba._forward`) is a chain of
autograd ops in the ``[B, D, L]`` layout the selective scan's training kernel wants: transposes
and copies around the depthwise convolution, the x and dt projections and the scan, and five
elementwise passes (delta bias, softplus, ``D u``, SiLU, the gate), each over ``B L d_inner``
floats. Without gradients none of that structure is needed. Here (``csrc/mamba_infer_cpu.cpp``):

- ``in_proj`` and ``x_proj`` stay torch matmuls (they are most of the FLOPs);
- the causal depthwise convolution + SiLU is one kernel on the ``[B, L, d_inner]`` half of
  ``in_proj``'s output, read in place;
- the scan kernel does the dt projection (rank ``dt_rank``, 4 in the paper's model), delta bias,
  softplus, the recurrence, ``+ D u`` and the SiLU gate per token, reading ``z`` in place from
  ``in_proj``'s output and writing ``[B, L, d_inner]`` that ``out_proj`` reads as it is;
- the residual ``x + Mamba(x)`` of the bidirectional block is folded into ``out_proj``'s matmul
  (``addmm``), and the backward direction runs the convolution and the scan from the last token
  (``reverse``), which equals flipping the sequence, running the layer and flipping back.

Used only inside :func:`fused_inference` (the enhancer enters it) with gradients off, CPU
tensors, float32 and the layer's backend resolving to ``cpp``
(:meth:`use_repro.models.mamba.Mamba.fused_inference_applies`). Training, its validation
curves and every other no-grad use run the training forward, so the curves a run records are of
the exact function it trained. The two agree to ~1e-6 relative (float32; different summation
orders and polynomial exp/log), tested in tests/models/test_mamba_infer.py.
"""
from __future__ import annotations

import contextlib
import threading

import torch

_STATE = threading.local()

# Tokens a fused layer call processes at once (whole sequences: a group of sequences of about
# this many tokens). Sequences are independent, so grouping changes no number (matmul rows are
# computed alike in any group; tested). It keeps every intermediate small: in_proj's output is
# tokens x 2 d_inner floats, 8 MB here for the paper's d_inner 256, against ~50 MB for a 30 s
# chunk at 48 kHz in one call. Blocks above glibc's largest mmap threshold (32 MB) are mapped
# fresh by every allocation, and the kernel then zeroes and faults in each page on first touch,
# which cost about as much as the selective scan itself; blocks of a few MB are reused from the
# heap and stay in the last-level cache between the steps of a layer.
CHUNK_TOKENS = 4096


def sequence_chunks(batch: int, length: int, tokens: int | None = None) -> list[tuple[int, int]]:
    """[start, stop) groups of the `batch` sequences of `length` tokens, about `tokens`
    (default CHUNK_TOKENS) tokens each, at least one sequence per group."""
    per = max(1, (CHUNK_TOKENS if tokens is None else tokens) // max(1, length))
    return [(i, min(batch, i + per)) for i in range(0, batch, per)]


@contextlib.contextmanager
def fused_inference(enabled: bool = True):
    """Within the block (this thread), Mamba layers on CPU tensors with gradients off run the
    fused inference kernels when they are available (:func:`active`)."""
    previous = getattr(_STATE, "enabled", False)
    _STATE.enabled = enabled
    try:
        yield
    finally:
        _STATE.enabled = previous


def requested() -> bool:
    """True inside :func:`fused_inference` (this thread)."""
    return getattr(_STATE, "enabled", False)


def available() -> bool:
    """True when the inference kernels' extension is built (or can be built now) and imports."""
    from use_repro.models import scan_cpu

    return scan_cpu.infer_extension() is not None


def mamba_forward(layer, hidden: torch.Tensor, reverse: bool = False,
                  residual: torch.Tensor | None = None) -> torch.Tensor:
    """``residual + layer(hidden)`` (``reverse``: on the time-reversed sequence, flipped back).

    layer: a :class:`use_repro.models.mamba.Mamba`; hidden, residual: ``[B, L, d_model]``
    float32 CPU tensors (residual None: no residual). Returns ``[B, L, d_model]``.
    """
    from use_repro.models import scan_cpu

    ext = scan_cpu.infer_extension()
    batch, length, _ = hidden.shape
    d_inner = layer.d_inner
    xz = layer.in_proj(hidden)                                            # [B, L, 2 d_inner]
    x, z = xz[..., :d_inner], xz[..., d_inner:]                           # views
    conv = layer.conv1d
    bias = conv.bias if conv.bias is not None else torch.empty(0)
    x = ext.conv_silu(x, conv.weight.reshape(d_inner, -1), bias, reverse)  # [B, L, d_inner]
    x_dbl = layer.x_proj(x)                                               # [B, L, R + 2N]
    A = -torch.exp(layer.A_log.float())
    y = ext.scan_infer(x, x_dbl.contiguous(), layer.dt_proj.weight, A, layer.D.float(), z,
                       layer.dt_proj.bias.float(), reverse)               # [B, L, d_inner]
    out = layer.out_proj
    flat = y.reshape(batch * length, d_inner)
    base = None
    if residual is not None:
        base = residual.reshape(batch * length, -1)
        if out.bias is not None:
            base = base + out.bias
    elif out.bias is not None:
        base = out.bias.expand(batch * length, -1)
    if base is None:
        result = flat @ out.weight.t()
    else:
        result = torch.addmm(base, flat, out.weight.t())
    return result.reshape(batch, length, -1)
