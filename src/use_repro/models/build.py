"""Build the paper's models from a profile's ``model`` section (the only place that reads it).

``model`` keys (schema: ``experiments/config/schema.yaml``)::

    model:
      regression:    {num_blocks, channels, d_state, d_conv, expand, dense_depth}
      generator:     {num_blocks, channels, d_state, d_conv, expand, dense_depth}
      discriminator: {channels, band_hz}
      scan_backend: auto | torch | fused | reference
      scan_checkpoint: true

Models themselves take plain arguments; these helpers translate the config into them.
"""
from __future__ import annotations

from use_repro.models.discriminator import MultiBandDiscriminator
from use_repro.models.generator import ResidualGenerator, TwoStage
from use_repro.models.usemamba import USEMamba, USEMambaConfig

_NET_KEYS = ("num_blocks", "channels", "d_state", "d_conv", "expand", "dense_depth")


def _section(cfg: dict) -> dict:
    return dict(cfg.get("model", cfg) or {})


def _net_config(cfg: dict, which: str, **fixed) -> USEMambaConfig:
    m = _section(cfg)
    sizes = dict(m.get(which) or {})
    unknown = sorted(set(sizes) - set(_NET_KEYS))
    if unknown:
        raise ValueError(f"config key model.{which}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(_NET_KEYS)}")
    values = {**sizes, **fixed}
    if "scan_backend" in m:
        values["scan_backend"] = m["scan_backend"]
    if "scan_checkpoint" in m:
        values["scan_checkpoint"] = bool(m["scan_checkpoint"])
    return USEMambaConfig.from_dict(values)


def regression_config(cfg: dict) -> USEMambaConfig:
    """USEMambaConfig of the regression model (``model.regression``)."""
    return _net_config(cfg, "regression")


def generator_config(cfg: dict) -> USEMambaConfig:
    """USEMambaConfig of the residual generator (``model.generator``; 4 input channels)."""
    return _net_config(cfg, "generator", in_channels=4)


def build_regression(cfg: dict) -> USEMamba:
    return USEMamba(regression_config(cfg))


def build_generator(cfg: dict) -> ResidualGenerator:
    return ResidualGenerator(generator_config(cfg))


def build_two_stage(cfg: dict) -> TwoStage:
    return TwoStage(regression_config(cfg), generator_config(cfg))


def build_discriminator(cfg: dict) -> MultiBandDiscriminator:
    d = dict(_section(cfg).get("discriminator") or {})
    unknown = sorted(set(d) - {"channels", "band_hz"})
    if unknown:
        raise ValueError(f"config key model.discriminator: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: channels, band_hz")
    return MultiBandDiscriminator(channels=int(d.get("channels", 32)),
                                  band_hz=float(d.get("band_hz", 4000.0)))
