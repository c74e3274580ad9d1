"""setup.RunContext.identity and the run folder it binds: the CLI refuses a folder of another
target, or starts afresh with --restart-if-changed; execution-only keys and more steps resume."""
from __future__ import annotations

import pytest
import torch
import yaml

from use_repro.errors import UsageError
from use_repro.cli import stage_parser
from use_repro.config import REPO_ROOT
from use_repro.models.checkpoint import load_model
from use_repro.train import cli, regression, setup
from use_repro.train.loop import list_checkpoints
from use_repro.train.arguments import TrainRun

from .conftest import make_meta, write_profile


def parse(*argv):
    parser, _ = stage_parser("train")
    return parser.parse_args([str(a) for a in argv])


def command_for(cfg, meta, out, target="shifted", steps=4, *extra):
    """The parsed `use-repro train regression` command line (what cli.run takes)."""
    return parse("regression", "--config", cfg, "--train-meta", meta, "--valid-meta", meta, "--target", target,
                 "--steps", steps, "--out", out, "--device", "cpu", *extra)


def args_for(cfg, meta, out, target="shifted", steps=4, *extra):
    """The run that command line describes (what the training code takes)."""
    return TrainRun.from_namespace(command_for(cfg, meta, out, target, steps, *extra))


def identity(args):
    ctx = setup.context(args, "regression", args.target)
    return ctx.identity(args)


def test_identity_holds_what_changes_the_weights_and_nothing_else(tmp_path, tiny_meta):
    base = identity(args_for(write_profile(tmp_path / "a.yaml"), tiny_meta, tmp_path / "o"))
    # execution-only settings, the step count, the output folder and the file's location
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "meta.tsv").write_bytes(tiny_meta.read_bytes())
    same = identity(args_for(write_profile(tmp_path / "b.yaml", checkpoint_every=7, log_every=3, keep_last=5),
                             moved / "meta.tsv", tmp_path / "other", "shifted", 9))
    assert same == base
    # the threads the run computes with change its weights: train.threads, or --threads
    assert identity(args_for(write_profile(tmp_path / "t.yaml", threads=2), tiny_meta, tmp_path / "o")) != base
    assert identity(args_for(write_profile(tmp_path / "a.yaml"), tiny_meta, tmp_path / "o", "shifted", 4,
                             "--threads", 2)) != base
    # what does change them
    assert identity(args_for(write_profile(tmp_path / "c.yaml", lr=5e-3), tiny_meta, tmp_path / "o")) != base
    assert identity(args_for(write_profile(tmp_path / "a.yaml"), tiny_meta, tmp_path / "o", "anechoic")) != base
    other_data = make_meta(tmp_path / "data2", seed=1)
    assert identity(args_for(write_profile(tmp_path / "a.yaml"), other_data, tmp_path / "o")) != base
    assert identity(args_for(write_profile(tmp_path / "a.yaml"), tiny_meta, tmp_path / "o", "shifted", 4,
                             "--seed", 5)) != base
    # the settings a regression run does not read (the GAN's networks and losses) are not part of
    # it, as they are not part of the DAG's digest of the run (stage_settings.TrainSettings, one declaration)
    gan_edit = yaml.safe_load((tmp_path / "a.yaml").read_text())
    gan_edit["model"]["generator"]["channels"] = 8
    gan_edit["train"]["gan_loss_weights"] = {"adversarial": 3.0}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(gan_edit))
    assert identity(args_for(tmp_path / "g.yaml", tiny_meta, tmp_path / "o")) == base


def test_the_dag_digest_and_the_resume_check_read_one_declaration():
    from use_repro.config import load_config
    from use_repro.stage_settings import TrainSettings

    cfg = load_config("tiny")

    def keys(stage):
        return set(TrainSettings.from_config(cfg, stage=stage, size="", simulate=False).selection())

    regression, finetune, gan = keys("regression"), keys("finetune"), keys("gan")
    assert not any(k.startswith(("model.generator", "model.discriminator", "train.gan_loss")) for k in regression)
    assert any(k.startswith("train.loss_weights") for k in regression)
    assert any(k.startswith("model.discriminator") for k in finetune)
    assert not any(k.startswith(("model.generator", "train.loss_weights")) for k in finetune)
    assert any(k.startswith("model.generator") for k in gan) and any(k.startswith("train.gan_loss.") or
                                                                     k == "train.gan_loss" for k in gan)
    # on-the-fly simulation reads the simulation section too
    assert any(k.startswith("simulation.") for k in
               TrainSettings.from_config(cfg, stage="regression", size="", simulate=True).selection())
    common = (REPO_ROOT / "experiments" / "rules" / "common.smk").read_text()
    assert "_S.TrainSettings.from_config(CFG, stage=e.stage, size=e.size, simulate=False)" in common


def test_training_into_a_folder_of_another_target_refuses_or_restarts(tmp_path, tiny_meta):
    cfg = write_profile(tmp_path / "tiny.yaml", checkpoint_every=2)
    out = tmp_path / "run"
    regression.train(args_for(cfg, tiny_meta, out, "shifted"))
    shifted = (out / "final.pt").read_bytes()
    with pytest.raises(UsageError) as e:  # the CLI's main prints it and exits 2
        cli.run(command_for(cfg, tiny_meta, out, "anechoic"))
    assert "target: 'shifted' -> 'anechoic'" in str(e.value) and "--restart-if-changed" in str(e.value)
    assert (out / "final.pt").read_bytes() == shifted  # refused: nothing touched
    # restarting gives what an empty folder gives, never the old run's weights
    res = regression.train(args_for(cfg, tiny_meta, out, "anechoic", 4, "--restart-if-changed"))
    assert res.resumed_from is None
    regression.train(args_for(cfg, tiny_meta, tmp_path / "fresh", "anechoic"))
    restarted, fresh = load_model(out / "final.pt"), load_model(tmp_path / "fresh" / "final.pt")
    for a, b in zip(restarted.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert (out / "final.pt").read_bytes() != shifted
    # the same settings with more steps resume
    res = regression.train(args_for(cfg, tiny_meta, out, "anechoic", 6, "--restart-if-changed"))
    assert res.resumed_from == 4 and [s for s, _ in list_checkpoints(out / "checkpoints")] == [4, 6]


def test_arguments_a_stage_cannot_run_with_raise_and_the_cli_prints_them(tmp_path, tiny_meta):
    from use_repro.train.arguments import TrainArgumentError

    command = command_for(write_profile(tmp_path / "tiny.yaml"), tiny_meta, tmp_path / "run", "shifted", 4, "--simulate")
    with pytest.raises(TrainArgumentError, match="give exactly one of --train-meta and --simulate"):
        regression.train(TrainRun.from_namespace(command))
    with pytest.raises(UsageError) as e:  # the CLI's main prints the message alone, exit status 2
        cli.run(command)
    assert str(e.value) == "train: give exactly one of --train-meta and --simulate"


def test_every_training_option_reaches_the_run_the_training_code_takes():
    """TrainRun is the typed form of the command line: every option of `train regression`,
    `gan` and `finetune` is one of its fields (none is dropped on the way to the training code),
    and lists become tuples (the run is frozen)."""
    import dataclasses

    parser, _ = stage_parser("train")
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    cli_only = {"help", "verbose", "train_stage", "func"}
    names = {f.name for f in dataclasses.fields(TrainRun)}
    for stage in ("regression", "gan", "finetune"):
        dests = {a.dest for a in sub.choices[stage]._actions} - cli_only
        assert dests <= names, (stage, sorted(dests - names))
    run = TrainRun.from_namespace(parse("gan", "--out", "o", "--init", "r.pt", "--simulate",
                                        "--speech-scp", "a.scp", "b.scp"))
    assert run.speech_scp == ("a.scp", "b.scp") and run.init == "r.pt" and run.simulate
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.steps = 3


def test_a_run_s_weights_do_not_depend_on_the_caller_s_thread_count(tmp_path, tiny_meta):
    """The run computes with train.threads whatever torch's count was before (a DAG job given
    another number of cores): the same final weights."""
    cfg = write_profile(tmp_path / "a.yaml", threads=2)
    weights = []
    for caller in (1, 2):
        torch.set_num_threads(caller)
        out = tmp_path / f"run{caller}"
        regression.train(args_for(cfg, tiny_meta, out))
        assert torch.get_num_threads() == 2  # the run's count
        weights.append(load_model(out / "final.pt").state_dict())
    for k, v in weights[0].items():
        assert torch.equal(v, weights[1][k]), k
