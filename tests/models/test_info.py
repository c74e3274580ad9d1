"""`use-repro model-info`: parameter counts (paper config within 10% of 9.6 M) and shapes."""
from __future__ import annotations

import json
import re

import torch

from use_repro.cli import main
from use_repro.models import build
from use_repro.models.info import PAPER_MODEL_SECTION, describe


def test_paper_count_printed_and_within_10_percent(capsys):
    assert main(["model-info", "--paper", "--model", "regression"]) == 0
    out = capsys.readouterr().out
    n = int(re.search(r"USEMamba\s+([\d,]+) parameters", out).group(1).replace(",", ""))
    assert abs(n / 9.6e6 - 1) <= 0.10
    assert "within 10%" in out
    # the selective scan it would run here, named
    from use_repro.models.mamba import backend_label, resolve_backend

    assert f"selective scan on cpu: {backend_label(resolve_backend('auto', torch.device('cpu')))}" in out


def test_profile_json_every_model(capsys):
    assert main(["model-info", "--config", "tiny", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"regression", "generator", "discriminator"}
    assert info["generator"]["config"]["in_channels"] == 4
    assert info["discriminator"]["bands"]["22050"] == [[0.0, 4000.0], [4000.0, 8000.0], [8000.0, 11025.0]]
    assert sum(info["regression"]["parts"].values()) == info["regression"]["parameters"]
    assert info["regression"]["scan_backend"]["cpu"].split()[0] in ("cpp", "torch")


def test_printed_latent_shape_is_the_real_one():
    section = {"regression": {"num_blocks": 0, "channels": 4, "dense_depth": 1}}
    info = describe(section, "regression", seconds=0.1)
    model = build.build_regression({"model": section}).eval()
    for fs in (8000, 44100):
        s = info["regression"]["shapes"][fs]
        _, f, n = s["spectrum"]
        with torch.no_grad():
            z = model.dense_encoder(torch.nn.functional.pad(torch.zeros(1, 2, n, f), (0, 2, 0, 2)))
        assert list(z.shape) == s["latent"]


def test_paper_generator_is_six_blocks():
    assert PAPER_MODEL_SECTION["generator"]["num_blocks"] == 6
