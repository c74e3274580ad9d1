"""Build the paper's models from a profile's ``model`` section.

``model`` keys (schema: ``experiments/config/schema.yaml``)::

    model:
      regression:    {num_blocks, channels, d_state, d_conv, expand, dense_depth,
                      scan_backend, mamba_checkpoint, mag_mode, pha_mode}
      generator:     {the same}
      discriminator: {channels, band_hz}
      sizes:         {<name>: {the same keys as regression}}   # picked by an experiment's `size`

The net sections are exactly :class:`use_repro.models.usemamba.USEMambaConfig` keywords, so
``USEMamba(cfg["model"]["regression"])`` is equivalent to :func:`build_regression`. Models take
plain arguments; these helpers only translate the config into them.
"""
from __future__ import annotations

from use_repro.models.discriminator import MultiBandDiscriminator
from use_repro.models.generator import ResidualGenerator
from use_repro.models.usemamba import USEMamba, USEMambaConfig

NET_KEYS = ("num_blocks", "channels", "d_state", "d_conv", "expand", "dense_depth",
            "scan_backend", "mamba_checkpoint", "mag_mode", "pha_mode")


def _section(cfg: dict) -> dict:
    return dict(cfg.get("model", cfg) or {})


def net_config(cfg: dict, role: str, size: str = "") -> USEMambaConfig:
    """USEMambaConfig of ``model.<role>`` (``regression`` / ``generator``) or ``model.sizes.<size>``."""
    m = _section(cfg)
    if size:
        sizes = m.get("sizes") or {}
        if size not in sizes:
            raise ValueError(f"config key model.sizes.{size}: missing; sizes: {', '.join(sorted(sizes)) or 'none'}")
        values, where = dict(sizes[size]), f"model.sizes.{size}"
    else:
        values, where = dict(m.get(role) or {}), f"model.{role}"
    unknown = sorted(set(values) - set(NET_KEYS))
    if unknown:
        raise ValueError(f"config key {where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(NET_KEYS)}")
    if role == "generator":
        values["in_channels"] = 4
    return USEMambaConfig.from_dict(values)


def build_regression(cfg: dict, size: str = "") -> USEMamba:
    return USEMamba(net_config(cfg, "regression", size))


def build_generator(cfg: dict, size: str = "") -> ResidualGenerator:
    return ResidualGenerator(net_config(cfg, "generator", size))


def build_discriminator(cfg: dict) -> MultiBandDiscriminator:
    d = dict(_section(cfg).get("discriminator") or {})
    unknown = sorted(set(d) - {"channels", "band_hz"})
    if unknown:
        raise ValueError(f"config key model.discriminator: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: channels, band_hz")
    return MultiBandDiscriminator(**d)
