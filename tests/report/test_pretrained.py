"""A `pretrained` system (the authors' released USEMamba) in the report: a table row without a
training run's curves, the comparison and curve figures unaffected, and a note naming the file
when it is missing; the profile checks of such an entry."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from use_repro.config import ConfigError, validate_config
from use_repro.models.released import save_released
from use_repro.models.usemamba import USEMamba, USEMambaConfig
from use_repro.report import layout
from use_repro.report.experiments import checkpoint_path, experiments, missing_checkpoints

from .conftest import make_run, write_eval
from .test_report import report, write_all_tables

LABEL = "USEMamba (authors' release)"


def with_release(run, present=True):
    """The synthetic run plus a `released` entry: its release-format file (under weights_dir) if
    `present`, and the evaluation files the DAG would have made of its enhanced sets."""
    weights = run["root"] / "weights"
    if present:
        torch.manual_seed(0)
        save_released(weights / "reuse" / "model.safetensors",
                      USEMamba(USEMambaConfig(num_blocks=1, channels=4, d_state=4, expand=2, dense_depth=1)),
                      container="safetensors")
    cfg = yaml.safe_load(run["cfg_path"].read_text())
    cfg["weights_dir"] = str(weights)
    cfg["experiments"]["released"] = {"stage": "pretrained", "checkpoint": "reuse/model.safetensors",
                                      "target": "early10ms", "test": True, "unseen": True, "label": LABEL}
    run["cfg_path"].write_text(yaml.safe_dump(cfg))
    ids = pd.read_csv(layout.eval_csv(run["results"], "early", "test", "early"))["id"].tolist()
    if present:
        for k, ref in enumerate(layout.REFERENCES):
            write_eval(layout.eval_csv(run["results"], "released", "test", ref), "shifted_gan", ids, seed=7 + k)
        un_ids = pd.read_csv(layout.eval_csv(run["results"], "original", "unseen", None))["id"].tolist()
        write_eval(layout.eval_csv(run["results"], "released", "unseen", None), "shifted_gan", un_ids, seed=9)
    return run


def test_a_pretrained_system_is_a_table_row_without_curves(tmp_path):
    run = with_release(make_run(tmp_path))
    assert not layout.curves(run["results"], "released").exists()
    tdir = write_all_tables(run)
    t1 = pd.read_csv(tdir / "table1.csv")
    row = t1[(t1.system == "released") & (t1.source == "reproduced")]
    assert len(row) == 1 and row["label"].iloc[0].startswith(LABEL)
    scores = pd.read_csv(layout.eval_csv(run["results"], "released", "test", "early"))
    assert row["PESQ"].iloc[0] == pytest.approx(scores["PESQ"].mean(), abs=1e-6) and row["n"].iloc[0] == len(scores)
    t6 = pd.read_csv(tdir / "table6.csv")
    anechoic = pd.read_csv(layout.eval_csv(run["results"], "released", "test", "anechoic"))
    assert t6[(t6.system == "released")]["PESQ"].iloc[0] == pytest.approx(anechoic["PESQ"].mean(), abs=1e-6)
    assert "released" in set(pd.read_csv(tdir / "table4.csv")["system"])
    t7 = pd.read_csv(tdir / "table7.csv")
    ranked = t7[t7.team == f"{LABEL} (ours)"]
    assert len(ranked) == 1 and ranked["DNSMOS"].iloc[0] == pytest.approx(scores["DNSMOS"].mean(), abs=1e-6)
    assert "No row for" not in (tdir / "table1.md").read_text()
    # the comparison and the learning-curve figures do not ask for its curves
    out = str(layout.tables_dir(run["results"]))
    assert report(run, "compare", "--out-dir", out) == 0
    md = (layout.tables_dir(run["results"]) / "compare.md").read_text()
    assert f"released: pretrained model {run['root'] / 'weights' / 'reuse' / 'model.safetensors'}" in md
    fig = run["figures"] / "fig3a.png"
    assert report(run, "figure", "fig3a", "--out", str(fig)) == 0 and fig.stat().st_size > 1000


def test_without_its_file_the_tables_say_why_the_row_is_absent(tmp_path):
    run = with_release(make_run(tmp_path), present=False)
    cfg = validate_config(yaml.safe_load(run["cfg_path"].read_text()))
    missing = run["root"] / "weights" / "reuse" / "model.safetensors"
    assert missing_checkpoints(cfg) == {"released": missing}
    tdir = write_all_tables(run)
    assert "released" not in set(pd.read_csv(tdir / "table1.csv")["system"])
    for t in ("table1", "table6", "table7", "table2", "table4"):
        md = (tdir / f"{t}.md").read_text()
        assert f"No row for experiments.released ({LABEL}): model file {missing} not found" in md, t
    assert "No row for" not in (tdir / "datasize.md").read_text()
    out = str(layout.tables_dir(run["results"]))
    assert report(run, "compare", "--out-dir", out) == 0
    assert "(file missing: not scored)" in (layout.tables_dir(run["results"]) / "compare.md").read_text()


def base_cfg(**entry):
    exps = {"shifted": {"stage": "regression", "target": "shifted", "steps": 4, "test": True}}
    exps["released"] = {"stage": "pretrained", "checkpoint": "reuse/model.safetensors", "test": True, **entry}
    # the report's defaults name runs of the paper profiles; this profile has two
    report = {"proposed": "", "fig9": {"two_stage": "", "finetune": ""},
              "spectrograms": {"regression": "", "gan": "", "early": "", "shifted": ""}}
    return {"profile": "x", "weights_dir": "/w", "experiments": exps, "report": report}


def test_checkpoint_resolves_under_weights_dir_or_as_given():
    exps = experiments(validate_config(base_cfg()))
    assert str(checkpoint_path(exps["released"], {"weights_dir": "/w"})) == "/w/reuse/model.safetensors"
    exps = experiments(validate_config(base_cfg(checkpoint="/abs/g.pth")))
    assert str(checkpoint_path(exps["released"], {"weights_dir": "/w"})) == "/abs/g.pth"
    assert not exps["released"].trained and exps["shifted"].trained


@pytest.mark.parametrize("change, key", [
    (lambda c: c["experiments"]["released"].pop("checkpoint"), "checkpoint"),
    (lambda c: c["experiments"]["released"].update(init="shifted"), "experiments.released.init"),
    (lambda c: c["experiments"]["released"].update(test=False), "set test and/or unseen"),
    (lambda c: c["experiments"]["shifted"].update(checkpoint="x.pth"), "experiments.shifted.checkpoint"),
    (lambda c: c["report"].update(fig3a=["shifted", "released"]), "report.fig3a"),
])
def test_a_pretrained_entry_is_checked(change, key):
    cfg = base_cfg()
    change(cfg)
    with pytest.raises(ConfigError, match=key.replace("(", r"\(")):
        experiments(validate_config(cfg))


@pytest.mark.parametrize("profile", ["gpu", "urgent2025"])
def test_the_paper_profiles_commented_example_is_a_valid_entry(profile, tmp_path):
    # the line a user uncomments: it parses, validates, and is left out while its file is absent
    from use_repro.config import CONFIG_DIR

    text = (CONFIG_DIR / f"{profile}.yaml").read_text()
    lines = [ln for ln in text.splitlines() if ln.strip().startswith("# released:")]
    assert len(lines) == 1, profile
    raw = yaml.safe_load(text)
    raw["experiments"].update(yaml.safe_load(lines[0].strip()[2:]))
    raw["weights_dir"] = str(tmp_path)
    cfg = validate_config(raw)
    exps = experiments(cfg)
    assert exps["released"].stage == "pretrained" and exps["released"].display == LABEL
    assert missing_checkpoints(cfg, exps) == {"released": tmp_path / "reuse" / "model.safetensors"}
