"""The DAG with a `pretrained` experiment: a model file trained elsewhere (the authors' released
USEMamba) is enhanced with and scored beside the retrained runs, and never trained.

- with the file (a release-format checkpoint built here from our model, as tests/models does),
  a dry run of the tiny profile plans its enhancement of both splits and its evaluations, the
  enhance command reads that very file, and no train job is planned for it;
- without the file the plan is the shipped profile's, and one printed line names the file;
- the documented `--config` way of adding the entry plans the same jobs;
- on an up-to-date tiny run, adding the entry without its file reruns only the report (whose
  tables' notes then name the file), and with the file its enhancement and scores as well.

Dry runs only (`snakemake -n`), each in its own working directory.
"""
from __future__ import annotations

import re
import shutil

import pytest
import torch
import yaml

from use_repro.config import REPO_ROOT
from use_repro.models.released import save_released
from use_repro.models.usemamba import USEMamba, USEMambaConfig

from tests.test_dag import SNAKEFILE, job_counts, make_up_to_date, planned, snakemake

LABEL = "USEMamba (authors' release)"


@pytest.fixture(scope="module")
def release_file(tmp_path_factory):
    """A small USEMamba saved in the release's container ({"generator": state_dict}), under a
    weights folder as `use-repro weights` lays it out."""
    weights = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = USEMamba(USEMambaConfig(num_blocks=1, channels=4, d_state=4, expand=2, dense_depth=1))
    return weights, save_released(weights / "reuse" / "g_00000100.pth", model)


def profile_with_release(tmp_path, weights, checkpoint="reuse/g_00000100.pth"):
    """tiny.yaml (same file name, so results/tiny) with the released model as an experiment."""
    raw = yaml.safe_load((REPO_ROOT / "experiments" / "config" / "tiny.yaml").read_text())
    if weights is not None:  # else the shipped weights_dir (./weights of the working directory)
        raw["weights_dir"] = str(weights)
    raw["experiments"]["released"] = {"stage": "pretrained", "checkpoint": checkpoint, "target": "early10ms",
                                      "test": True, "unseen": True, "label": LABEL}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def plan(work, *config):
    r = snakemake(work, "tables", "-n", "-p", "--config", *config)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    return out, job_counts(out)


def jobs_of(out: str, rule: str) -> list[str]:
    """The `wildcards:` lines of every planned job of `rule`."""
    blocks = re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", out)
    return [m.group(1) for b in blocks if re.search(rf"rule {rule}:\n", b)
            for m in [re.search(r"wildcards: (.*)", b)] if m]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return plan(tmp_path_factory.mktemp("shipped"), "profile=tiny")


def test_release_is_enhanced_and_scored_not_trained(tmp_path, release_file, shipped):
    weights, ckpt = release_file
    out, counts = plan(tmp_path / "work", f"profile={profile_with_release(tmp_path, weights)}")
    _, base = shipped
    # two enhancements (test, unseen), the test set against both references, the held-out languages
    assert counts["enhance"] == base["enhance"] + 2
    assert counts["evaluate_test"] == base["evaluate_test"] + 2
    assert counts["evaluate_unseen"] == base["evaluate_unseen"] + 1
    assert counts["train"] == base["train"]
    assert {"exp=released, split=test", "exp=released, split=unseen"} <= set(jobs_of(out, "enhance"))
    assert not any("released" in w for w in jobs_of(out, "train"))
    assert {"system=released, ref=early", "system=released, ref=anechoic"} <= set(jobs_of(out, "evaluate_test"))
    # the enhance command reads the file under weights_dir, no final.pt
    assert len(re.findall(rf"use-repro enhance --checkpoint {re.escape(str(ckpt))} ", out)) == 2
    assert "results/tiny/released/final.pt" not in out and "released/curves.csv" not in out
    assert "not found" not in out


def test_without_the_file_the_plan_leaves_it_out_and_says_so(tmp_path, release_file, shipped):
    weights, _ = release_file
    missing = weights / "reuse" / "absent.safetensors"
    out, counts = plan(tmp_path / "work", f"profile={profile_with_release(tmp_path, weights, 'reuse/absent.safetensors')}")
    assert counts == shipped[1]
    lines = [ln for ln in out.splitlines() if str(missing) in ln]
    # one line (Snakemake prints the job table twice; the warning once), naming entry and label
    assert len(lines) == 1 and "experiments.released" in lines[0] and LABEL in lines[0], lines
    assert "exp=released" not in out and "system=released" not in out


def test_config_override_adds_the_entry(tmp_path, release_file, shipped):
    # the README's way to score the release with a shipped profile, without editing it
    _, ckpt = release_file
    entry = f"experiments={{released: {{stage: pretrained, checkpoint: {ckpt}, test: true}}}}"
    out, counts = plan(tmp_path / "work", "profile=tiny", entry)
    assert counts["enhance"] == shipped[1]["enhance"] + 1
    assert counts["evaluate_test"] == shipped[1]["evaluate_test"] + 2
    assert counts["train"] == shipped[1]["train"]
    assert f"use-repro enhance --checkpoint {ckpt} " in out


def test_on_an_up_to_date_run_the_entry_reruns_the_report_then_its_scores(tmp_path, release_file):
    # the shipped weights_dir (every job that reads it stays up to date), the file under it
    _, ckpt = release_file
    work = tmp_path / "work"
    make_up_to_date(work, SNAKEFILE, "tiny")
    report_only = {"report_table", "report_figure", "report_compare", "report_provenance", "tables", "total"}
    absent = planned(work, profile_with_release(tmp_path, None))
    # the tables that would show the entry name its missing file (not datasize, which shows no run)
    assert set(absent) <= report_only and absent["report_table"] == 5, absent
    (work / "weights" / "reuse").mkdir(parents=True)
    shutil.copy(ckpt, work / "weights" / "reuse" / ckpt.name)
    present = planned(work, profile_with_release(tmp_path, None))
    assert present["enhance"] == 2 and present["evaluate_test"] == 2 and present["evaluate_unseen"] == 1
    assert "train" not in present and "simulate_render" not in present, present
