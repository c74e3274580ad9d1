"""USEMamba: the time-frequency Mamba regression model (the paper's Section 3.2).

SEMamba's TF-Mamba design (Chao et al., SLT 2024) made sampling-frequency independent as in
USEMamba / RE-USE (Chao et al., Interspeech 2025; the authors' released inference code):

```
noisy (mag_c, pha) [B, F, N] x2 --stack--> [B, 2, N, F]       (time N, frequency F)
  DenseEncoder: 1x1 conv -> dense block (4 dilated 3x3 convs) -> strided conv (time /4, freq /2)
  num_blocks x TFMambaBlock: bidirectional Mamba along time, then along frequency
  MagDecoder:   dense block -> sub-pixel conv (time x4) -> sub-pixel conv (freq x2) -> 1x1 head
  PhaseDecoder: dense block -> sub-pixel convs as above -> two 1x1 heads (r, i) -> atan2(i, r)
-> (mag_c, pha, com) [B, F, N], [B, F, N], [B, F, N, 2]
```

Every layer is convolutional along frequency or a sequence model, so one set of weights runs at
any rate 8-48 kHz (F = 161 ... 961 bins of 25 Hz) and any length; the input is padded to a
multiple of the time stride and the output cropped back, so N is arbitrary.

TF-Mamba block (per axis): forward branch ``x + Mamba_f(LayerNorm_f(x))``, backward branch the same
on the flipped sequence (flipped back), the two concatenated and merged by a linear layer
(2C -> C), plus the block's input (residual). Time first, then frequency.

Magnitude output (``mag_mode``): ``residual`` (default) predicts the compressed magnitude as the
noisy compressed magnitude plus a learned correction, ``mapping`` predicts it directly. Both can
add energy where the input has none (bandwidth extension, packet loss), which SEMamba's bounded
mask cannot; ``residual`` starts from the identity, as SEMamba's mask does at initialisation.
Phase output (``pha_mode``): ``mapping`` (default, the paper's and SEMamba's) is atan2 of the
phase decoder's two outputs; ``residual`` rotates the noisy phase by that angle (the heads start
at weights 0, biases r = 1, i = 0, so the output phase is the noisy phase until trained — the
construction of the GAN generator's phase residual, :mod:`use_repro.models.generator`). The sum is
not re-wrapped to (-pi, pi]: every consumer is 2-pi periodic. A mapped phase starts as noise and
takes many thousand steps to become useful, which a CPU profile of a few hundred steps never
reaches (its output would be worse than its input); the small profiles use ``residual`` and say so.
The magnitude output is not clamped (a clamp would stop gradients); :func:`use_repro.audio.stft.decompress`
clamps negative values to 0 when the waveform is made.

Parameters: the paper configuration (30 blocks, 64 channels, d_state 16, d_conv 4, expand 4) has
about 9.65 M parameters (``use-repro model-info --paper``), the paper quoting ~9.6 M.

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
from use_repro.models.mamba import BACKENDS, Mamba, recompute_in_backward

MAG_MODES = ("residual", "mapping")
PHA_MODES = ("mapping", "residual")


@dataclass
class USEMambaConfig:
    """Sizes of a USEMamba network. Defaults are the paper's regression model."""

    num_blocks: int = 30          # TF-Mamba blocks
    channels: int = 64            # feature channels C (Mamba d_model)
    d_state: int = 16             # Mamba state size N
    d_conv: int = 4               # Mamba causal conv width
    expand: int = 4               # Mamba inner width = expand * channels
    in_channels: int = 2          # input feature maps: (mag_c, pha); the GAN generator uses 4
    dense_depth: int = 4          # convolutions per dense block
    time_stride: int = 4          # encoder downsampling along time (decoders upsample back)
    freq_stride: int = 2          # encoder downsampling along frequency
    norm_eps: float = 1e-5        # LayerNorm epsilon in the Mamba branches
    mag_mode: str = "residual"    # "residual" | "mapping" (see the module docstring)
    pha_mode: str = "mapping"     # "mapping" (the paper's) | "residual" (see the module docstring)
    scan_backend: str = "auto"    # selective scan: auto | torch | fused | reference
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
# building blocks
# --------------------------------------------------------------------------------------------

def _norm_act(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels, affine=True), nn.PReLU(channels)]


class DenseBlock(nn.Module):
    """``depth`` 3x3 convolutions, dilated 1, 2, 4, ... along time, each fed every earlier output.

    ``[B, C, T, F]`` -> ``[B, C, T, F]``.
    """

    def __init__(self, channels: int, depth: int = 4, kernel: tuple[int, int] = (3, 3)):
        super().__init__()
        self.layers = nn.ModuleList()
        for i in range(depth):
            dil = 2 ** i
            pad = ((kernel[0] - 1) * dil // 2, (kernel[1] - 1) // 2)
            self.layers.append(nn.Sequential(
                nn.Conv2d(channels * (i + 1), channels, kernel, dilation=(dil, 1), padding=pad),
                *_norm_act(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        for layer in self.layers:
            x = layer(skip)
            skip = torch.cat([x, skip], dim=1)
        return x


class DenseEncoder(nn.Module):
    """``[B, in, T, F]`` (T a multiple of time_stride) -> ``[B, C, T / ts, ceil(F / fs)]``."""

    def __init__(self, in_channels: int, channels: int, depth: int, time_stride: int, freq_stride: int):
        super().__init__()
        self.conv_in = nn.Sequential(nn.Conv2d(in_channels, channels, 1), *_norm_act(channels))
        self.dense = DenseBlock(channels, depth)
        # kernel spans exactly one stride along time (no overlap), 3 bins along frequency
        fk = 2 * (freq_stride // 2) + 1 if freq_stride > 1 else 1
        self.down = nn.Sequential(
            nn.Conv2d(channels, channels, (time_stride, fk), stride=(time_stride, freq_stride),
                      padding=(0, fk // 2)),
            *_norm_act(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dense(self.conv_in(x)))


class SubPixelConv(nn.Module):
    """Upsample one axis by ``factor`` with a convolution to ``factor * C`` channels + shuffle.

    ``axis`` 2 (time) or 3 (frequency) of ``[B, C, T, F]``.
    """

    def __init__(self, channels: int, factor: int, axis: int):
        super().__init__()
        if axis not in (2, 3):
            raise ValueError("SubPixelConv: axis must be 2 (time) or 3 (frequency)")
        self.factor, self.axis = factor, axis
        kernel = (3, 1) if axis == 2 else (1, 3)
        padding = (1, 0) if axis == 2 else (0, 1)
        self.conv = nn.Conv2d(channels, channels * factor, kernel, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return self.conv(x)
        y = self.conv(x)
        b, cr, t, f = y.shape
        c = cr // self.factor
        y = y.view(b, c, self.factor, t, f)
        if self.axis == 2:   # channel c*r + j -> time t*r + j
            return y.permute(0, 1, 3, 2, 4).reshape(b, c, t * self.factor, f)
        return y.permute(0, 1, 3, 4, 2).reshape(b, c, t, f * self.factor)


class Decoder(nn.Module):
    """Dense block -> sub-pixel upsampling (time, then frequency) -> norm/act -> 1x1 head(s).

    ``[B, C, T', F']`` -> ``[B, out_channels, T' * ts, F' * fs]`` (the caller crops).
    """

    def __init__(self, channels: int, out_channels: int, depth: int, time_stride: int, freq_stride: int):
        super().__init__()
        self.dense = DenseBlock(channels, depth)
        self.up_time = SubPixelConv(channels, time_stride, axis=2)
        self.up_freq = SubPixelConv(channels, freq_stride, axis=3)
        self.act = nn.Sequential(*_norm_act(channels))
        self.head = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.up_freq(self.up_time(self.dense(x)))))


class BiMamba(nn.Module):
    """Bidirectional Mamba along dim 1 of ``[B, L, C]``; returns ``[B, L, C]``.

    forward: x + Mamba_f(LN_f(x)); backward: the same on flip(x), flipped back; merged by a
    linear layer (2C -> C) and added to x. With ``checkpoint`` (and a non-fused scan) only the
    input is stored for the backward pass and the whole module is recomputed there: its
    activations are ~30 floats per token and channel, which for the 30-block model on a CPU would
    otherwise be tens of GB per minute of audio.
    """

    def __init__(self, channels: int, d_state: int, d_conv: int, expand: int, eps: float,
                 backend: str, checkpoint: bool):
        super().__init__()
        kw = dict(d_state=d_state, d_conv=d_conv, expand=expand, backend=backend, checkpoint=False)
        self.checkpoint = checkpoint
        self.norm_fwd = nn.LayerNorm(channels, eps=eps)
        self.mamba_fwd = Mamba(channels, **kw)
        self.norm_bwd = nn.LayerNorm(channels, eps=eps)
        self.mamba_bwd = Mamba(channels, **kw)
        self.merge = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if recompute_in_backward(self.checkpoint, self.mamba_fwd.backend, x.device):
            return _checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        fwd = x + self.mamba_fwd(self.norm_fwd(x))
        xr = torch.flip(x, dims=[1])
        bwd = torch.flip(xr + self.mamba_bwd(self.norm_bwd(xr)), dims=[1])
        return self.merge(torch.cat([fwd, bwd], dim=-1)) + x


class TFMambaBlock(nn.Module):
    """Bidirectional Mamba along time, then along frequency. ``[B, C, T, F]`` -> same."""

    def __init__(self, channels: int, d_state: int, d_conv: int, expand: int, eps: float,
                 backend: str, checkpoint: bool):
        super().__init__()
        self.time = BiMamba(channels, d_state, d_conv, expand, eps, backend, checkpoint)
        self.freq = BiMamba(channels, d_state, d_conv, expand, eps, backend, checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        y = x.permute(0, 3, 2, 1).reshape(b * f, t, c)          # sequences along time
        y = self.time(y)
        y = y.reshape(b, f, t, c).permute(0, 2, 1, 3).reshape(b * t, f, c)   # along frequency
        y = self.freq(y)
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
    the phase in (-pi, pi] and the compressed complex spectrum ``mag_c * exp(j pha)``.
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
        c = cfg.channels
        self.encoder = DenseEncoder(cfg.in_channels, c, cfg.dense_depth, cfg.time_stride, cfg.freq_stride)
        self.blocks = nn.ModuleList(
            TFMambaBlock(c, cfg.d_state, cfg.d_conv, cfg.expand, cfg.norm_eps, cfg.scan_backend,
                         cfg.mamba_checkpoint)
            for _ in range(cfg.num_blocks))
        self.mag_decoder = Decoder(c, 1, cfg.dense_depth, cfg.time_stride, cfg.freq_stride)
        self.pha_decoder = Decoder(c, 2, cfg.dense_depth, cfg.time_stride, cfg.freq_stride)
        if cfg.mag_mode == "residual":
            self.reset_magnitude_residual()
        if cfg.pha_mode == "residual":
            self.reset_phase_rotation()

    @torch.no_grad()
    def reset_magnitude_residual(self) -> None:
        """Magnitude head to zero, so a `residual` magnitude starts as the noisy magnitude exactly."""
        self.mag_decoder.head.weight.zero_()
        self.mag_decoder.head.bias.zero_()

    @torch.no_grad()
    def reset_phase_rotation(self) -> None:
        """Phase heads to the identity rotation: weights 0, biases r = 1, i = 0 (atan2(0, 1) = 0)."""
        head = self.pha_decoder.head   # output channel 0: r, 1: i
        head.weight.zero_()
        head.bias.copy_(torch.tensor([1.0, 0.0]))

    def set_scan_backend(self, backend: str, checkpoint: bool | None = None) -> None:
        """Switch every Mamba layer's scan backend (weights unchanged); optionally checkpointing."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown selective-scan backend {backend!r}; choose from {', '.join(BACKENDS)}")
        for m in self.modules():
            if isinstance(m, Mamba):
                m.backend = backend
            if isinstance(m, BiMamba) and checkpoint is not None:
                m.checkpoint = checkpoint

    def trunk(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw decoder outputs of input maps ``[B, in_channels, N, F]`` (time, frequency).

        Returns ``(mag [B, N, F], pha_r [B, N, F], pha_i [B, N, F])`` cropped to N, F.
        """
        if features.dim() != 4 or features.shape[1] != self.config.in_channels:
            raise ValueError(f"USEMamba.trunk: expected [B, {self.config.in_channels}, N, F], "
                             f"got {tuple(features.shape)}")
        n, f = features.shape[-2:]
        ts = self.config.time_stride
        pad = (-n) % ts
        if pad:
            features = F.pad(features, (0, 0, 0, pad))   # silent frames after the end
        x = self.encoder(features)
        for block in self.blocks:
            x = block(x)
        mag = self.mag_decoder(x)[:, 0, :n, :f]
        pha = self.pha_decoder(x)[:, :, :n, :f]
        return mag, pha[:, 0], pha[:, 1]

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


PAPER_REGRESSION = USEMambaConfig()                      # 30 blocks, ~9.65 M parameters
PAPER_GENERATOR = USEMambaConfig(num_blocks=6, in_channels=4)
