"""Mamba (selective state space) block with two interchangeable scan backends.

The module's parameters have exactly the names, shapes and initialisation of
``mamba_ssm.modules.mamba_simple.Mamba`` (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``,
``A_log``, ``D``, ``out_proj``), so a state dict moves between a CUDA machine running the fused
kernel and a CPU-only machine running the pure-PyTorch scan without conversion.

The selective scan, for every batch b, channel d and state n (``mamba_ssm``'s
``selective_scan_ref`` semantics)::

    delta = softplus(delta + delta_bias)                      # if delta_softplus
    h[t]  = exp(delta[t] * A) * h[t-1] + delta[t] * B[t] * u[t]
    y[t]  = <C[t], h[t]> + D * u[t]
    y     = y * silu(z)                                       # if z is given

Backends (:func:`selective_scan`):

- ``fused``: ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` — used when the
  package imports and the tensors are on CUDA.
- ``triton``: :func:`use_repro.models.scan_triton.selective_scan_triton`, two Triton kernels
  (forward, backward) that need no build; ``auto`` on CUDA when ``mamba_ssm`` is not importable
  and triton is (the GPU machines' torch ships it). States are kept every ~sqrt(L) steps and
  recomputed per chunk in the backward pass. CPU tensors run it only under Triton's
  interpreter (``TRITON_INTERPRET=1``: the tests).
- ``cpp``: :func:`use_repro.models.scan_cpu.selective_scan_cpu`, a compiled C++ CPU scan with
  its backward pass (one sequential pass per sequence and channel with the states in cache,
  parallel over sequences and channels; like the fused kernel it stores only its inputs for the
  backward pass). Built by the install (``make env``); ``auto`` on the CPU when it is available,
  else (the reason logged once) ``torch``.
- ``torch``: :func:`selective_scan_torch`, a chunked scan that is parallel over the sequence:
  the sequence is cut into chunks scanned side by side (one step of every chunk per vector op),
  then the state entering each chunk is carried across chunk boundaries and the chunks are
  scanned again from it: ~3 sqrt(L) vector steps instead of L, using only products of decays
  (never their reciprocals), so it is as stable as the recurrence. How many chunks depends on
  how much work one time step already is (:func:`scan_chunks`): a CPU gains from cutting the
  sequence only while a step is a small vector op; for layers whose step is already large
  (many sequences x d_inner x d_state) it runs as one chunk.
- ``reference``: :func:`selective_scan_ref`, a plain loop over time steps; the ground truth for
  tests and the baseline of ``bench/models.py``.

Memory: the fused kernel recomputes its intermediates in the backward pass. The torch scan,
under autograd, keeps every step's ``[B, d_inner, d_state]`` decays and states (the size of the
whole ``[B, L, d_inner, d_state]`` tensor), and the layer's projections another ~3000 floats per
token; with ``checkpoint=True`` (the default of :class:`Mamba`) a layer stores only its input and
is recomputed in the backward pass, so one layer's intermediates are alive at a time — the trade
the fused kernel makes.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from use_repro.models import mamba_infer, scan_cpu, scan_triton
from use_repro.models.scan_steps import finish, prepare

BACKENDS = ("auto", "cpp", "torch", "fused", "triton", "reference")


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _fused_scan_fn():
    """``mamba_ssm``'s fused ``selective_scan_fn`` or None when the package does not import."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a CUDA extension that fails to load
        return None
    return selective_scan_fn


def fused_available() -> bool:
    """True when ``mamba_ssm``'s fused kernel imports and a CUDA device is present."""
    return torch.cuda.is_available() and _fused_scan_fn() is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    """The scan that ``backend`` runs on ``device``. ``auto``: on CUDA ``fused`` when
    ``mamba_ssm`` imports, else ``triton`` when triton imports, else ``torch``; on the CPU
    ``cpp`` when the compiled scan is available (built by the install; if not, the reason is
    logged once), else ``torch``. A named backend that cannot run there raises RuntimeError."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        if device.type == "cuda":
            if _fused_scan_fn() is not None:
                return "fused"
            return "triton" if scan_triton.available() else "torch"
        return "cpp" if device.type == "cpu" and scan_cpu.available() else "torch"
    if backend == "fused" and (device.type != "cuda" or _fused_scan_fn() is None):
        raise RuntimeError("selective-scan backend 'fused' needs mamba_ssm and CUDA tensors")
    if backend == "triton" and not (scan_triton.available()
                                    and (device.type == "cuda" or scan_triton.interpreting())):
        raise RuntimeError("selective-scan backend 'triton' needs triton and CUDA tensors (CPU tensors only "
                           "under TRITON_INTERPRET=1)"
                           + (f"; triton does not import: {scan_triton.unavailable_reason()}"
                              if not scan_triton.available() else ""))
    if backend == "cpp" and (device.type != "cpu" or not scan_cpu.available()):
        raise RuntimeError("selective-scan backend 'cpp' needs CPU tensors and the compiled scan "
                           "(python -m use_repro.models.scan_cpu --build; see the log for why it is unavailable)")
    return backend


def backend_label(name: str) -> str:
    """A resolved backend as reports print it: ``fused (mamba_ssm 2.2.4)``, ``triton (triton
    3.6.0)``, ``cpp (compiled CPU scan)``, ``torch (chunked PyTorch scan)``, ``reference``."""
    if name == "fused":
        try:
            from importlib.metadata import version

            return f"fused (mamba_ssm {version('mamba_ssm')})"
        except Exception:
            return "fused (mamba_ssm)"
    return {"triton": f"triton (triton {scan_triton.version()})", "cpp": "cpp (compiled CPU scan)",
            "torch": "torch (chunked PyTorch scan)", "reference": "reference (Python loop)"}.get(name, name)


def model_scan_backends(model: nn.Module, device: torch.device | str) -> list[str]:
    """The resolved scan backends of every :class:`Mamba` layer in ``model`` on ``device``
    (sorted, each once; empty for a model without Mamba layers)."""
    device = torch.device(device)
    return sorted({resolve_backend(m.backend, device) for m in model.modules() if isinstance(m, Mamba)})


def selective_scan_ref(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                       delta_bias: torch.Tensor | None = None,
                       delta_softplus: bool = False) -> torch.Tensor:
    """Sequential reference: a Python loop over the L time steps.

    u, delta, z: ``[B, D, L]``; A: ``[D, N]``; B, C: ``[B, N, L]`` (input-dependent);
    D, delta_bias: ``[D]``. Returns ``[B, D, L]`` in u's dtype. Computes in float32.
    """
    dtype = u.dtype
    u, delta = prepare(u, delta, delta_bias, delta_softplus)
    A = A.float()
    B, C = B.float(), C.float()
    batch, dim, length = u.shape
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    steps = zip(delta.unbind(-1), u.unbind(-1), B.unbind(-1), C.unbind(-1))
    for dt, u_t, b_t, c_t in steps:                                # [B, D], [B, D], [B, N], [B, N]
        dt = dt.unsqueeze(-1)
        h = torch.exp(dt * A) * h + dt * b_t.unsqueeze(1) * u_t.unsqueeze(-1)
        ys.append(torch.einsum("bdn,bn->bd", h, c_t))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, dim, 0)
    return finish(y, u, D, z, dtype)


# Work per vector op that amortises PyTorch's per-op overhead (~5 us) on a CPU while staying in
# cache: the scan cuts the sequence into as many chunks as it takes to give each step's slab
# [batch, chunks, d_inner, d_state] about this many elements (per thread).
SLAB_ELEMENTS = 1 << 16
MIN_CHUNKS = 4   # fewer chunks save too few steps to pay for the extra pass and stored step terms


def scan_chunks(batch: int, dim: int, state: int, length: int, threads: int | None = None) -> int:
    """Number of chunks the torch scan cuts a ``length`` sequence into (1: a single pass).

    About sqrt(L) chunks when one time step is little work (few sequences, narrow layers), so
    ~3 sqrt(L) vector steps replace L; one chunk when a time step is already a large vector op
    (B * d_inner * d_state >= SLAB_ELEMENTS * threads / MIN_CHUNKS), where splitting the
    sequence would only add arithmetic. At exactly that size (e.g. 2 threads, 8 x 256 x 16) a
    step is large: one chunk (measured: 4 chunks there were slower than the reference loop).
    """
    threads = torch.get_num_threads() if threads is None else threads
    per_step = max(1, batch * dim * state)
    if per_step * MIN_CHUNKS >= SLAB_ELEMENTS * max(1, threads):
        return 1
    chunks = min(SLAB_ELEMENTS * max(1, threads) // per_step, int(math.isqrt(max(length, 1))))
    return chunks if chunks >= MIN_CHUNKS else 1


def selective_scan_torch(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                         C: torch.Tensor, D: torch.Tensor | None = None,
                         z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
                         delta_softplus: bool = False, chunks: int | None = None) -> torch.Tensor:
    """Pure-PyTorch selective scan, parallel over the sequence.

    Same arguments, shapes and result as :func:`selective_scan_ref`; ``chunks`` overrides
    :func:`scan_chunks`. The sequence is cut into ``chunks`` equal chunks that are scanned
    side by side, one time step of every chunk per vector op:

    1. every chunk scanned from a zero state, keeping only its final state (k steps);
    2. the true state entering each chunk, carried across chunk boundaries with the chunk's total
       decay ``exp(A * sum(dt))`` (``chunks`` small steps);
    3. every chunk scanned again from its true entering state, emitting ``y`` (k steps).

    Only products of decays appear (never their reciprocals), so it is as stable as the
    recurrence. With one chunk (large layers, see :func:`scan_chunks`) steps 1-2 are skipped and
    nothing of size ``[B, L, d_inner, d_state]`` is materialised: each step's decays and inputs
    are made on the fly, as the fused kernel does, so every vector op stays in cache. With
    several chunks (small layers only) every step's decays and inputs are made in one vector op
    each and shared by steps 1 and 3.
    """
    dtype = u.dtype
    u, delta = prepare(u, delta, delta_bias, delta_softplus)
    A = A.float()
    batch, dim, length = u.shape
    state = A.shape[1]
    if length == 0:
        return finish(u.new_zeros(batch, dim, 0), u, D, z, dtype)
    n_chunks = scan_chunks(batch, dim, state, length) if chunks is None else max(1, min(int(chunks), length))
    k = -(-length // n_chunks)
    pad = n_chunks * k - length

    def by_step(x: torch.Tensor) -> torch.Tensor:
        """[B, X, L] -> [k, B, chunks, X]: step i of every chunk (padding: 0)."""
        if pad:
            x = F.pad(x, (0, pad))
        return x.reshape(batch, x.shape[1], n_chunks, k).permute(3, 0, 2, 1).contiguous()

    dt_k = by_step(delta)                     # dt = 0 after the end: decay 1, input 0
    du_k = by_step(delta * u)
    b_k, c_k = by_step(B.float()), by_step(C.float())

    if n_chunks == 1:
        # one pass, every step's terms made on the fly: [B, d_inner, d_state] ops stay in cache
        ys, h = [], None
        for dt_i, du_i, b_i, c_i in zip(dt_k.unbind(0), du_k.unbind(0), b_k.unbind(0), c_k.unbind(0)):
            inp = du_i.unsqueeze(-1) * b_i.unsqueeze(-2)                      # [B, 1, D, N]
            h = inp if h is None else torch.addcmul(inp, torch.exp(dt_i.unsqueeze(-1) * A), h)
            ys.append(torch.linalg.vecdot(h, c_i.unsqueeze(-2)))              # [B, 1, D]
        y = torch.stack(ys, dim=0)                                            # [k, B, 1, D]
    else:
        # the slabs are small here (see scan_chunks): make every step's terms in one op each
        a_k = torch.exp(dt_k.unsqueeze(-1) * A).unbind(0)                     # k x [B, chunks, D, N]
        inp_k = (du_k.unsqueeze(-1) * b_k.unsqueeze(-2)).unbind(0)
        # 1. every chunk from a zero state: its final state
        h = inp_k[0]
        for a, inp in zip(a_k[1:], inp_k[1:]):
            h = torch.addcmul(inp, a, h)
        # 2. the state entering each chunk, carried with the chunks' total decays
        chunk_dt = dt_k.sum(0)                                                # [B, chunks, D]
        decay = torch.exp(chunk_dt.unsqueeze(-1) * A).unbind(1)              # chunks x [B, D, N]
        ends = h.unbind(1)
        carried = [torch.zeros_like(ends[0])]
        for c in range(n_chunks - 1):
            carried.append(torch.addcmul(ends[c], decay[c], carried[-1]))
        h = torch.stack(carried, dim=1)                                       # [B, chunks, D, N]
        # 3. every chunk again from its entering state
        hs = []
        for a, inp in zip(a_k, inp_k):
            h = torch.addcmul(inp, a, h)
            hs.append(h)
        y = torch.linalg.vecdot(torch.stack(hs, dim=0), c_k.unsqueeze(-2))    # [k, B, chunks, D]
    y = y.permute(1, 2, 0, 3).reshape(batch, n_chunks * k, dim)
    if pad:
        y = y[:, :length]
    return finish(y.transpose(1, 2), u, D, z, dtype)


def selective_scan_fused(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """``mamba_ssm``'s fused CUDA kernel (same arguments as :func:`selective_scan_ref`)."""
    fn = _fused_scan_fn()
    if fn is None:
        raise RuntimeError("mamba_ssm is not installed; the fused selective scan is unavailable")
    return fn(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(),
              None if D is None else D.float(), z=None if z is None else z.contiguous(),
              delta_bias=None if delta_bias is None else delta_bias.float(),
              delta_softplus=delta_softplus)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   backend: str = "auto"):
    """Dispatch to the fused kernel (CUDA + mamba_ssm), the Triton kernels, the compiled CPU
    scan, the parallel torch scan or the reference (see :func:`resolve_backend`).

    Recomputation in the backward pass is the calling layer's (:func:`recompute_in_backward`).
    """
    name = resolve_backend(backend, u.device)
    if name == "fused":
        return selective_scan_fused(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    fn = {"cpp": scan_cpu.selective_scan_cpu, "triton": scan_triton.selective_scan_triton,
          "torch": selective_scan_torch,
          "reference": selective_scan_ref}[name]
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def recompute_in_backward(enabled: bool, backend: str, device: torch.device) -> bool:
    """Whether a layer running the scan `backend` on `device` should store only its input and
    be recomputed in the backward pass: asked for, gradients being recorded, and not the fused
    kernel (which recomputes its own intermediates)."""
    return enabled and torch.is_grad_enabled() and resolve_backend(backend, device) != "fused"


# --------------------------------------------------------------------------------------------
# the block
# --------------------------------------------------------------------------------------------

class Mamba(nn.Module):
    """Mamba mixer, parameter-compatible with ``mamba_ssm.modules.mamba_simple.Mamba``.

    Args mirror ``mamba_ssm`` (d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto",
    dt_min, dt_max, dt_init, dt_scale, dt_init_floor, conv_bias, bias) plus

    - ``backend``: ``auto`` | ``cpp`` | ``torch`` | ``fused`` | ``triton`` | ``reference`` (see the
      module docstring);
    - ``checkpoint``: with the torch/reference scan and gradients on, store only the layer's
      input and recompute the whole layer in the backward pass (default True). Without it a
      layer keeps ~3000 floats per token plus the scan's per-step states; the 30-block model on
      1 s of 16 kHz audio would hold ~17 GB. The fused path recomputes internally already.

    forward: ``[B, L, d_model]`` -> ``[B, L, d_model]``.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init: str = "random", dt_scale: float = 1.0, dt_init_floor: float = 1e-4,
                 conv_bias: bool = True, bias: bool = False, backend: str = "auto",
                 checkpoint: bool = True):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown selective-scan backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.backend = backend
        self.checkpoint = checkpoint

        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state))
        self.D = nn.Parameter(torch.empty(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        self._init_ssm(dt_min, dt_max, dt_init, dt_scale, dt_init_floor)

    @torch.no_grad()
    def _init_ssm(self, dt_min, dt_max, dt_init, dt_scale, dt_init_floor):
        # dt projection: keeps the variance of dt at initialisation (as mamba_ssm)
        std = self.dt_rank ** -0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        else:
            raise ValueError(f"dt_init {dt_init!r}: choose 'random' or 'constant'")
        # dt bias: softplus(bias) log-uniform in [dt_min, dt_max]; bias = inverse softplus
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True
        # S4D-real: A[d, n] = -(n + 1)
        self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32))
                         .expand(self.d_inner, -1))
        self.A_log._no_weight_decay = True
        self.D.fill_(1.0)
        self.D._no_weight_decay = True

    def fused_inference_applies(self, hidden: torch.Tensor) -> bool:
        """Whether this layer runs the fused inference kernels on `hidden` now: inside
        :func:`use_repro.models.mamba_infer.fused_inference`, gradients off, float32 CPU
        tensors, the scan backend resolving to ``cpp`` and the kernels built."""
        return (mamba_infer.requested() and not torch.is_grad_enabled() and hidden.device.type == "cpu"
                and hidden.dtype == torch.float32 and resolve_backend(self.backend, hidden.device) == "cpp"
                and mamba_infer.available())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.fused_inference_applies(hidden):
            out = hidden.new_empty(*hidden.shape[:2], self.d_model)
            for i, j in mamba_infer.sequence_chunks(*hidden.shape[:2]):
                out[i:j] = mamba_infer.mamba_forward(self, hidden[i:j])
            return out
        if recompute_in_backward(self.checkpoint, self.backend, hidden.device):
            return _checkpoint(self._forward, hidden, use_reentrant=False)
        return self._forward(hidden)

    def _forward(self, hidden: torch.Tensor) -> torch.Tensor:
        length = hidden.shape[1]
        xz = self.in_proj(hidden).transpose(1, 2)                        # [B, 2 d_inner, L]
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :length])                         # causal depthwise conv
        x_dbl = self.x_proj(x.transpose(1, 2))                           # [B, L, R + 2N]
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)           # [B, d_inner, L]
        A = -torch.exp(self.A_log.float())
        y = selective_scan(x, dt, A, B.transpose(1, 2), C.transpose(1, 2), self.D, z,
                           delta_bias=self.dt_proj.bias, delta_softplus=True, backend=self.backend)
        return self.out_proj(y.transpose(1, 2))

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, "
                f"expand={self.expand}, dt_rank={self.dt_rank}, backend={self.backend!r}")
