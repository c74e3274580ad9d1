"""The two-stage framework's residual generator (the paper's Section 2.2 and Figure 1).

Stage 1 is a USEMamba regression model trained to convergence and frozen; it estimates the
posterior mean. Stage 2 is a smaller USEMamba (6 blocks in the paper; the same encoder, TF-Mamba
blocks and decoders as the released regression model, :mod:`use_repro.models.usemamba`, with a
4-map input convolution) that sees the noisy input
*and* the frozen regression output (their feature maps concatenated: noisy mag_c, noisy phase,
regression mag_c, regression phase -> 4 input channels) and whose output is added to the
regression output — the residual connection of Figure 1 — so the GAN only has to learn the
correction of the over-smoothed regions.

Where the residual is added: in the model's own spectral domain,

- magnitude: ``mag_c = reg_mag_c + delta`` in the log1p-compressed domain, ``delta`` the
  magnitude head's raw output;
- phase: ``pha = reg_pha + atan2(i, r)`` — the phase decoder's two heads give a rotation of the
  regression phase (equivalently the regression phasor is multiplied by ``exp(j atan2(i, r))``).
  The sum is not re-wrapped to (-pi, pi]: every consumer (cos/sin, the anti-wrapped phase losses)
  is 2-pi periodic, and not wrapping keeps the identity at initialisation exact.

Initialisation: the magnitude head's weight and bias are 0 and the phase heads' weights are 0 with
biases r = 1, i = 0, so ``delta = 0`` and ``atan2(0, 1) = 0`` exactly (with a well-defined
gradient, unlike atan2(0, 0)). Before training the generator therefore returns the regression
output bit for bit. At the first step only the heads receive gradients (zero weights pass none
back); from the second step on, every layer does.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from use_repro.audio.stft import mag_pha_to_com
from use_repro.models.usemamba import USEMamba, USEMambaConfig, WaveformMixin, _check_spec

GENERATOR_IN_CHANNELS = 4   # noisy mag_c, noisy pha, regression mag_c, regression pha


class ResidualGenerator(nn.Module):
    """Stage-2 generator: a USEMamba conditioned on (noisy, regression) that corrects regression.

    ``ResidualGenerator(config)`` or keywords as for :class:`USEMamba`; ``in_channels`` is forced
    to 4; ``mag_mode`` and ``pha_mode`` do not apply (the heads' outputs are always the residual).

    forward(noisy_mag_c, noisy_pha, reg_mag_c, reg_pha), each ``[B, F, N]`` ->
    ``(mag_c [B, F, N], pha [B, F, N], com [B, F, N, 2])``.
    """

    def __init__(self, config: USEMambaConfig | dict | None = None, **overrides):
        super().__init__()
        base = config.to_dict() if isinstance(config, USEMambaConfig) else dict(config or {})
        base.update(overrides)
        base.setdefault("num_blocks", 6)
        base["in_channels"] = GENERATOR_IN_CHANNELS
        self.net = USEMamba(base)
        self.config = self.net.config
        self.init_args = {"config": self.config.to_dict()}
        self.reset_residual()

    @torch.no_grad()
    def reset_residual(self) -> None:
        """Zero the last layers so the generator returns the regression output exactly."""
        self.net.reset_magnitude_residual()
        self.net.reset_phase_rotation()

    def forward(self, noisy_mag_c: torch.Tensor, noisy_pha: torch.Tensor,
                reg_mag_c: torch.Tensor, reg_pha: torch.Tensor):
        _check_spec(noisy_mag_c, noisy_pha, "ResidualGenerator (noisy)")
        _check_spec(reg_mag_c, reg_pha, "ResidualGenerator (regression)")
        if reg_mag_c.shape != noisy_mag_c.shape:
            raise ValueError(f"ResidualGenerator: noisy {tuple(noisy_mag_c.shape)} and regression "
                             f"{tuple(reg_mag_c.shape)} spectra differ in shape")
        features = torch.stack([noisy_mag_c, noisy_pha, reg_mag_c, reg_pha], dim=1).transpose(2, 3)
        delta_mag, rot_r, rot_i = self.net.trunk(features)
        mag_c = reg_mag_c + delta_mag.transpose(1, 2)
        pha = reg_pha + torch.atan2(rot_i, rot_r).transpose(1, 2)
        return mag_c, pha, mag_pha_to_com(mag_c, pha)


class TwoStage(WaveformMixin, nn.Module):
    """Frozen regression model + residual generator: the paper's full enhancement model.

    ``TwoStage(regression=<USEMambaConfig dict>, generator=<USEMambaConfig dict>)``; use
    :meth:`from_models` to wrap trained modules. The regression part never trains: its parameters
    have ``requires_grad=False`` and it stays in eval mode whatever ``train()`` is called with.

    forward(noisy_mag_c, noisy_pha) ``[B, F, N]`` -> ``(mag_c, pha, com)`` as :class:`USEMamba`.
    ``forward_both`` also returns the regression output; ``enhance_waveform(wav [B, T], fs)``
    runs STFT -> model -> iSTFT.
    """

    def __init__(self, regression: USEMambaConfig | dict | None = None,
                 generator: USEMambaConfig | dict | None = None):
        super().__init__()
        self.regression = USEMamba(regression)
        self.generator = ResidualGenerator(generator)
        self.init_args = {"regression": self.regression.config.to_dict(),
                          "generator": self.generator.config.to_dict()}
        self.freeze_regression()

    @classmethod
    def from_models(cls, regression: USEMamba, generator: ResidualGenerator) -> "TwoStage":
        model = cls(regression.config, generator.config)
        model.regression.load_state_dict(regression.state_dict())
        model.generator.load_state_dict(generator.state_dict())
        return model.to(next(regression.parameters()).device)

    def freeze_regression(self) -> None:
        for p in self.regression.parameters():
            p.requires_grad_(False)
        self.regression.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.regression.eval()
        return self

    def forward_both(self, noisy_mag_c: torch.Tensor, noisy_pha: torch.Tensor):
        """-> ``((mag_c, pha, com) final, (mag_c, pha, com) regression)``."""
        with torch.no_grad():
            reg = self.regression(noisy_mag_c, noisy_pha)
        out = self.generator(noisy_mag_c, noisy_pha, reg[0], reg[1])
        return out, reg

    def forward(self, noisy_mag_c: torch.Tensor, noisy_pha: torch.Tensor):
        return self.forward_both(noisy_mag_c, noisy_pha)[0]
