"""The elementwise steps around a selective scan's recurrence, shared by the torch, reference and
Triton scans: delta bias and softplus before, ``+ D u`` and the SiLU gate after (as torch ops,
differentiated by autograd)."""
from __future__ import annotations

import torch.nn.functional as F


def prepare(u, delta, delta_bias, delta_softplus):
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return u.float(), delta


def finish(y, u, D, z, dtype):
    """y [B, D, L] (float32) -> + D * u, * silu(z), back to the input dtype."""
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)
