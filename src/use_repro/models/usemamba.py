"""USEMamba: the time-frequency Mamba regression model (the paper's Section 3.2), as released.

The structure, parameter names and shapes are those of the authors' released RE-USE checkpoint
(NVIDIA, ``models/generator_SEMamba_time_d4.py``, ``codec_module_time_d4.py``,
``mamba_block2_SEMamba.py``; 1416 tensors, 9,607,747 parameters), as two independent public
ports that load it with a strict key check describe it (``appautomaton/mlx-speech``
``models/reuse/``, ``onnxruntime/mobius`` ``models/reuse.py``). The module attribute names are the
release's own (``dense_encoder``, ``TSMamba``, ``mask_decoder``, ``phase_decoder``, ...), so the
release's state dict is this module's state dict with no renaming
(:mod:`use_repro.models.released` loads it):

```
noisy (mag_c, pha) [B, F, N] x2 --stack--> [B, 2, N, F]              (time N, frequency F)
  zero-pad 2 frames and 2 bins at the end                     -> [B, 2, N + 2, F + 2]
  dense_encoder: dense_conv_1 (1x1 conv, IN, PReLU) -> dense_block (4 convs 3x3, dilated
                 1, 2, 4, 8 along time, each fed every earlier output) -> dense_conv_2
                 (conv (1, 3), stride (4, 2), no padding; IN, PReLU)  -> [B, C, N', F']
                 N' = floor((N + 1) / 4) + 1, F' = floor((F - 1) / 2) + 1
  TSMamba:       num_blocks x TFMambaBlock (bidirectional Mamba along time, then frequency)
  mask_decoder:  dense_block -> up_conv1 (sub-pixel conv, frequency x2; IN, PReLU)
                 -> up_conv2 (sub-pixel conv, time x4; IN, PReLU) -> final_conv 1x1 -> magnitude
  phase_decoder: the same trunk -> phase_conv_r, phase_conv_i (1x1) -> atan2(i, r)
  crop to [N, F]
-> (mag_c, pha, com) [B, F, N], [B, F, N], [B, F, N, 2]
```

Every layer is convolutional along frequency or a sequence model, so one set of weights runs at
any rate 8-48 kHz (F = 161 ... 961 bins of 25 Hz) and any number of frames N >= 1.

Bidirectional Mamba (``MambaBlock`` of the release), on ``[B, L, C]``: forward branch
``x + Mamba_f(x)``, backward branch the same on the flipped sequence (flipped back), the two
concatenated and merged by ``output_proj`` (2C -> C), then ``norm`` (LayerNorm) — no norm before
either direction. The TF block adds its input: ``x + MambaBlock_time(x)``, then the same along
frequency.

Magnitude output (``mag_mode``): ``mapping`` (the release's and the paper default) is the mask
decoder's output itself, the compressed magnitude ``log1p(|X|)`` (the release's ``mapping: true``;
no bounded mask); ``residual`` adds that output to the noisy compressed magnitude, with the head
zeroed so the model starts as the identity.
Phase output (``pha_mode``): ``mapping`` (the release's) is atan2 of the two phase heads;
``residual`` rotates the noisy phase by that angle (the heads start at weights 0, biases r = 1,
i = 0, so the output phase is the noisy phase until trained — the construction of the GAN
generator's phase residual, :mod:`use_repro.models.generator`). The sum is not re-wrapped to
(-pi, pi]: every consumer is 2-pi periodic. Both ``residual`` modes exist for the small CPU
profiles (tiny, mini), whose few hundred steps never get a mapped phase or magnitude past noise;
they say so in their ``compare.md``. The magnitude is not clamped (a clamp would stop gradients);
:func:`use_repro.audio.stft.decompress` clamps negative values to 0 when the waveform is made
(the release's ``relu_log1p``).

Memory: without the fused CUDA kernel every bidirectional Mamba is recomputed in the backward
pass (``mamba_checkpoint``, default on), which is what lets the 30-block model train on a CPU.

``enhance_waveform(wav [B, T], fs)`` runs SFI STFT -> model -> iSTFT (also on :class:`TwoStage`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from use_repro.audio.stft import mag_pha_istft, mag_pha_stft, mag_pha_to_com
from use_repro.models import mamba_infer
from use_repro.models.mamba import BACKENDS, Mamba, recompute_in_backward

MAG_MODES = ("mapping", "residual")
PHA_MODES = ("mapping", "residual")
# The release zero-pads the encoder's input by this many frames and bins at the end, so the
# strided (1, 3) convolution never drops the last frames or bins (the decoders overshoot; the
# output is cropped back).
INPUT_PAD = 2


@dataclass
class USEMambaConfig:
    """Sizes of a USEMamba network. Defaults are the paper's regression model (= the release)."""

    num_blocks: int = 30          # TF-Mamba blocks (the release's num_tfmamba)
    channels: int = 64            # feature channels C (Mamba d_model; the release's hid_feature)
    d_state: int = 16             # Mamba state size N
    d_conv: int = 4               # Mamba causal conv width
    expand: int = 4               # Mamba inner width = expand * channels
    in_channels: int = 2          # input feature maps: (mag_c, pha); the GAN generator uses 4
    dense_depth: int = 4          # convolutions per dense block
    time_stride: int = 4          # encoder downsampling along time (decoders upsample back)
    freq_stride: int = 2          # encoder downsampling along frequency
    norm_eps: float = 1e-5        # LayerNorm / InstanceNorm epsilon (PyTorch's default, the release's)
    mag_mode: str = "mapping"     # "mapping" (the release's) | "residual" (see the module docstring)
    pha_mode: str = "mapping"     # "mapping" (the release's) | "residual" (see the module docstring)
    scan_backend: str = "auto"    # selective scan: auto | cpp | torch | fused | triton | reference
    mamba_checkpoint: bool = True  # recompute each bidirectional Mamba in backward (memory)

    def __post_init__(self):
        for name in ("num_blocks", "channels", "d_state", "d_conv", "expand", "in_channels",
                     "dense_depth", "time_stride", "freq_stride"):
            value = getattr(self, name)
            if int(value) != value or value < (0 if name == "num_blocks" else 1):
                raise ValueError(f"USEMambaConfig.{name}: {value!r} must be a positive integer")
        if self.mag_mode not in MAG_MODES:
            raise ValueError(f"USEMambaConfig.mag_mode: {self.mag_mode!r}; choose from {', '.join(MAG_MODES)}")
        if self.pha_mode not in PHA_MODES:
            raise ValueError(f"USEMambaConfig.pha_mode: {self.pha_mode!r}; choose from {', '.join(PHA_MODES)}")
        if self.scan_backend not in BACKENDS:
            raise ValueError(f"USEMambaConfig.scan_backend: {self.scan_backend!r}; choose from {', '.join(BACKENDS)}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "USEMambaConfig":
        """Build from a dict (e.g. a config section), naming any unknown key."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"USEMambaConfig: unknown key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# building blocks (attribute names are the release's: its state-dict keys)
# --------------------------------------------------------------------------------------------

def _conv_norm_act(conv: nn.Module, channels: int, eps: float) -> nn.Sequential:
    """``Sequential(conv, InstanceNorm2d(affine), PReLU)``: keys ``.0.*``, ``.1.*``, ``.2.weight``."""
    return nn.Sequential(conv, nn.InstanceNorm2d(channels, eps=eps, affine=True), nn.PReLU(channels))


class DenseBlock(nn.Module):
    """``depth`` 3x3 convolutions, dilated 1, 2, 4, ... along time, each fed every earlier output.

    ``[B, C, T, F]`` -> ``[B, C, T, F]``.
    """

    def __init__(self, channels: int, depth: int = 4, eps: float = 1e-5):
        super().__init__()
        self.dense_block = nn.ModuleList()
        for i in range(depth):
            dil = 2 ** i
            conv = nn.Conv2d(channels * (i + 1), channels, (3, 3), dilation=(dil, 1), padding=(dil, 1))
            self.dense_block.append(_conv_norm_act(conv, channels, eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        for layer in self.dense_block:
            x = layer(skip)
            skip = torch.cat([x, skip], dim=1)
        return x


class DenseEncoder(nn.Module):
    """``[B, in, T, F]`` (already padded by INPUT_PAD) -> ``[B, C, (T - 1) // ts + 1, (F - 3) // fs + 1]``.

    The down-sampling convolution spans one frame and 3 bins (kernel (1, 3)) with stride
    (ts, fs) and no padding: it reads every ts-th frame of the dense block's output, whose
    dilated 3x3 convolutions have already mixed the neighbouring frames in.
    """

    def __init__(self, in_channels: int, channels: int, depth: int, time_stride: int,
                 freq_stride: int, eps: float = 1e-5):
        super().__init__()
        self.dense_conv_1 = _conv_norm_act(nn.Conv2d(in_channels, channels, (1, 1)), channels, eps)
        self.dense_block = DenseBlock(channels, depth, eps)
        self.dense_conv_2 = _conv_norm_act(
            nn.Conv2d(channels, channels, (1, 3), stride=(time_stride, freq_stride)), channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_conv_2(self.dense_block(self.dense_conv_1(x)))


class SPConvTranspose2d(nn.Module):
    """Sub-pixel up-sampling of the last axis by ``r``: ``[B, C, H, W]`` -> ``[B, C_out, H, W * r]``.

    Pads W by one on each side, convolves (kernel (1, 3)) to ``r * C_out`` channels and moves
    channel ``j * C_out + c`` to position ``w * r + j`` of output channel ``c`` (the release's
    channel order, so its weights mean the same here).
    """

    def __init__(self, in_channels: int, out_channels: int, r: int):
        super().__init__()
        self.r, self.out_channels = r, out_channels
        self.conv = nn.Conv2d(in_channels, out_channels * r, (1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, (1, 1)))
        b, _, h, w = y.shape
        y = y.view(b, self.r, self.out_channels, h, w).permute(0, 2, 3, 4, 1)
        return y.reshape(b, self.out_channels, h, w * self.r)


class DecoderTrunk(nn.Module):
    """Dense block -> up-sample frequency (``up_conv1``) -> up-sample time (``up_conv2``).

    Each sub-pixel convolution is followed by InstanceNorm + PReLU. ``up_conv2`` runs on the
    time/frequency-transposed map, so it is the same (1, 3) construction along time.
    ``[B, C, T', F']`` -> ``[B, C, T' * ts, F' * fs]`` (the caller crops).
    """

    def __init__(self, channels: int, depth: int, time_stride: int, freq_stride: int, eps: float):
        super().__init__()
        self.dense_block = DenseBlock(channels, depth, eps)
        self.up_conv1 = _conv_norm_act(SPConvTranspose2d(channels, channels, freq_stride), channels, eps)
        self.up_conv2 = _conv_norm_act(SPConvTranspose2d(channels, channels, time_stride), channels, eps)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up_conv1(self.dense_block(x))
        return self.up_conv2(x.transpose(2, 3)).transpose(2, 3)


class MagDecoder(DecoderTrunk):
    """Trunk -> ``final_conv`` (1x1, one map): ``[B, C, T', F']`` -> ``[B, 1, T' * ts, F' * fs]``."""

    def __init__(self, channels: int, depth: int, time_stride: int, freq_stride: int, eps: float):
        super().__init__(channels, depth, time_stride, freq_stride, eps)
        self.final_conv = nn.Conv2d(channels, 1, (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(self.trunk(x))


class PhaseDecoder(DecoderTrunk):
    """Trunk -> ``phase_conv_r``, ``phase_conv_i`` (1x1 each): -> ``(r, i)``, each ``[B, 1, T' ts, F' fs]``."""

    def __init__(self, channels: int, depth: int, time_stride: int, freq_stride: int, eps: float):
        super().__init__(channels, depth, time_stride, freq_stride, eps)
        self.phase_conv_r = nn.Conv2d(channels, 1, (1, 1))
        self.phase_conv_i = nn.Conv2d(channels, 1, (1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.phase_conv_r(x), self.phase_conv_i(x)


class BiMamba(nn.Module):
    """Bidirectional Mamba along dim 1 of ``[B, L, C]`` (the release's ``MambaBlock``); -> ``[B, L, C]``.

    ``norm(output_proj(cat(x + Mamba_f(x), flip(x' + Mamba_b(x')))))`` with ``x' = flip(x)``:
    no norm before either direction, a LayerNorm after the merge; the residual around the
    whole module is the TF block's. With ``checkpoint`` (and a non-fused scan) only the input is
    stored for the backward pass and the module is recomputed there: its activations are ~30
    floats per token and channel, which for the 30-block model on a CPU would otherwise be tens
    of GB per minute of audio.
    """

    def __init__(self, channels: int, d_state: int, d_conv: int, expand: int, eps: float,
                 backend: str, checkpoint: bool):
        super().__init__()
        kw = dict(d_state=d_state, d_conv=d_conv, expand=expand, backend=backend, checkpoint=False)
        self.checkpoint = checkpoint
        self.forward_blocks = Mamba(channels, **kw)
        self.backward_blocks = Mamba(channels, **kw)
        self.output_proj = nn.Linear(2 * channels, channels)
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.forward_blocks.fused_inference_applies(x):
            return self._forward_fused(x)
        if recompute_in_backward(self.checkpoint, self.forward_blocks.backend, x.device):
            return _checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_forward` with the fused inference kernels (mamba_infer): the backward branch
        runs on the reversed sequence without flipping it, the residuals are folded into the
        layers' output matmuls and ``output_proj`` of the concatenation is two matmuls into one
        buffer (no concatenated copy). Sequences are independent, so they go through in groups
        of about ``mamba_infer.CHUNK_TOKENS`` tokens (see there why)."""
        batch, length, channels = x.shape
        weight = self.output_proj.weight                                    # [C, 2C]
        out = torch.empty_like(x)
        for i, j in mamba_infer.sequence_chunks(batch, length):
            xs = x[i:j]
            fwd = mamba_infer.mamba_forward(self.forward_blocks, xs, residual=xs)
            bwd = mamba_infer.mamba_forward(self.backward_blocks, xs, reverse=True, residual=xs)
            merged = torch.addmm(self.output_proj.bias, fwd.reshape(-1, channels), weight[:, :channels].t())
            merged.addmm_(bwd.reshape(-1, channels), weight[:, channels:].t())
            out[i:j] = self.norm(merged.reshape(xs.shape))
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        fwd = x + self.forward_blocks(x)
        xr = torch.flip(x, dims=[1])
        bwd = torch.flip(xr + self.backward_blocks(xr), dims=[1])
        return self.norm(self.output_proj(torch.cat([fwd, bwd], dim=-1)))


class TFMambaBlock(nn.Module):
    """``x + BiMamba_time(x)`` along time, then the same along frequency. ``[B, C, T, F]`` -> same."""

    def __init__(self, channels: int, d_state: int, d_conv: int, expand: int, eps: float,
                 backend: str, checkpoint: bool):
        super().__init__()
        self.time_mamba = BiMamba(channels, d_state, d_conv, expand, eps, backend, checkpoint)
        self.freq_mamba = BiMamba(channels, d_state, d_conv, expand, eps, backend, checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        y = x.permute(0, 3, 2, 1).reshape(b * f, t, c)          # sequences along time
        y = y + self.time_mamba(y)
        y = y.reshape(b, f, t, c).permute(0, 2, 1, 3).reshape(b * t, f, c)   # along frequency
        y = y + self.freq_mamba(y)
        return y.reshape(b, t, f, c).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------

class WaveformMixin:
    """``enhance_waveform``: the spectral model as a waveform-to-waveform function."""

    def enhance_waveform(self, wav: torch.Tensor, fs: int) -> torch.Tensor:
        """Waveform ``[B, T]`` at ``fs`` -> enhanced waveform ``[B, T]`` (SFI STFT, model, iSTFT)."""
        mag_c, pha, _ = mag_pha_stft(wav, fs)
        out_mag_c, out_pha, _ = self(mag_c, pha)
        return mag_pha_istft(out_mag_c, out_pha, fs, wav.shape[-1])


class USEMamba(WaveformMixin, nn.Module):
    """USEMamba regression model (see the module docstring).

    ``USEMamba(config)`` or ``USEMamba(num_blocks=..., channels=..., ...)`` (keywords override
    the config's fields). ``init_args`` holds the JSON-able constructor arguments that
    :mod:`use_repro.models.checkpoint` records.

    forward(noisy_mag_c ``[B, F, N]``, noisy_pha ``[B, F, N]``) ->
    ``(mag_c [B, F, N], pha [B, F, N], com [B, F, N, 2])``: the enhanced compressed magnitude,
    the phase and the compressed complex spectrum ``mag_c * exp(j pha)``.
    """

    def __init__(self, config: USEMambaConfig | dict | None = None, **overrides):
        super().__init__()
        if isinstance(config, USEMambaConfig):
            base = config.to_dict()
        else:
            base = dict(config or {})
        base.update(overrides)
        cfg = USEMambaConfig.from_dict(base)
        self.config = cfg
        self.init_args = {"config": cfg.to_dict()}
        c, eps = cfg.channels, cfg.norm_eps
        self.dense_encoder = DenseEncoder(cfg.in_channels, c, cfg.dense_depth, cfg.time_stride,
                                          cfg.freq_stride, eps)
        self.TSMamba = nn.ModuleList(
            TFMambaBlock(c, cfg.d_state, cfg.d_conv, cfg.expand, eps, cfg.scan_backend,
                         cfg.mamba_checkpoint)
            for _ in range(cfg.num_blocks))
        self.mask_decoder = MagDecoder(c, cfg.dense_depth, cfg.time_stride, cfg.freq_stride, eps)
        self.phase_decoder = PhaseDecoder(c, cfg.dense_depth, cfg.time_stride, cfg.freq_stride, eps)
        if cfg.mag_mode == "residual":
            self.reset_magnitude_residual()
        if cfg.pha_mode == "residual":
            self.reset_phase_rotation()

    @torch.no_grad()
    def reset_magnitude_residual(self) -> None:
        """Magnitude head to zero, so a `residual` magnitude starts as the noisy magnitude exactly."""
        self.mask_decoder.final_conv.weight.zero_()
        self.mask_decoder.final_conv.bias.zero_()

    @torch.no_grad()
    def reset_phase_rotation(self) -> None:
        """Phase heads to the identity rotation: weights 0, biases r = 1, i = 0 (atan2(0, 1) = 0)."""
        for head, bias in ((self.phase_decoder.phase_conv_r, 1.0), (self.phase_decoder.phase_conv_i, 0.0)):
            head.weight.zero_()
            head.bias.fill_(bias)

    def trunk(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw decoder outputs of input maps ``[B, in_channels, N, F]`` (time, frequency).

        Returns ``(mag [B, N, F], pha_r [B, N, F], pha_i [B, N, F])`` cropped to N, F.
        """
        if features.dim() != 4 or features.shape[1] != self.config.in_channels:
            raise ValueError(f"USEMamba.trunk: expected [B, {self.config.in_channels}, N, F], "
                             f"got {tuple(features.shape)}")
        n, f = features.shape[-2:]
        x = self.dense_encoder(F.pad(features, (0, INPUT_PAD, 0, INPUT_PAD)))
        for block in self.TSMamba:
            x = block(x)
        mag = self.mask_decoder(x)[:, 0, :n, :f]
        pha_r, pha_i = self.phase_decoder(x)
        return mag, pha_r[:, 0, :n, :f], pha_i[:, 0, :n, :f]

    def forward(self, noisy_mag_c: torch.Tensor, noisy_pha: torch.Tensor):
        _check_spec(noisy_mag_c, noisy_pha, "USEMamba")
        features = torch.stack([noisy_mag_c, noisy_pha], dim=1).transpose(2, 3)   # [B, 2, N, F]
        mag, pha_r, pha_i = self.trunk(features)
        mag_c = mag.transpose(1, 2)
        if self.config.mag_mode == "residual":
            mag_c = noisy_mag_c + mag_c
        pha = torch.atan2(pha_i, pha_r).transpose(1, 2)
        if self.config.pha_mode == "residual":
            pha = noisy_pha + pha     # a rotation of the noisy phase (not re-wrapped: see above)
        return mag_c, pha, mag_pha_to_com(mag_c, pha)


def _check_spec(mag_c: torch.Tensor, pha: torch.Tensor, who: str) -> None:
    if mag_c.dim() != 3 or mag_c.shape != pha.shape:
        raise ValueError(f"{who}: expected magnitude and phase of the same shape [B, F, N], got "
                         f"{tuple(mag_c.shape)} and {tuple(pha.shape)}")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


PAPER_REGRESSION = USEMambaConfig()                      # 30 blocks, 9,607,747 parameters (= the release)
PAPER_GENERATOR = USEMambaConfig(num_blocks=6, in_channels=4)
