"""compare.md's "Scale of this run": the CPU profiles' model departures are stated, the paper's are not."""
from __future__ import annotations

from use_repro.config import load_config
from use_repro.report.cli import _model_scale as _scale_of
from use_repro.stage_settings import CompareSettings


def _model_scale(cfg):
    return _scale_of(CompareSettings.from_config(cfg, pretrained=False))


def test_cpu_profiles_state_their_residual_outputs_and_paper_profiles_none():
    for profile in ("tiny", "mini", "small"):
        text = _model_scale(load_config(profile))
        assert "phase residual (the paper's is mapping)" in text, profile
        assert "magnitude residual (the paper's is mapping)" in text, profile
    for profile in ("gpu", "urgent2025"):
        text = _model_scale(load_config(profile))
        assert "regression 30 blocks x 64 channels (d_state 16, expand 4);" in text, profile
        assert "the paper's is" not in text and "learning rate 0.0002 (the paper's 2e-4)" in text, profile


def test_a_decaying_learning_rate_is_stated():
    text = _model_scale(load_config("small"))
    assert "learning rate 0.003 (the paper's 2e-4), multiplied by 0.99928 after every step" in text
    assert "multiplied by" not in _model_scale(load_config("mini"))
