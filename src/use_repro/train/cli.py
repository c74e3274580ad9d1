"""Train the paper's models: `regression`, `gan` (two-stage correction), `finetune` (baseline).

  use-repro train regression --config CFG (--train-meta M | --simulate --corpus-dir D)
        [--valid-meta M] --target {early,shifted,anechoic,early<W>ms} [--speech-list SCP]
        [--size NAME] [--init CKPT] [--steps N] [--seed S] [--device D] [--threads N] --out DIR
  use-repro train gan      ... --init REGRESSION.pt ... --out DIR
  use-repro train finetune ... --init REGRESSION.pt ... --out DIR
  use-repro train residual-correlation --checkpoint GAN.pt --test-meta M [--target T]
        [--domain compressed|linear] [--limit N] --out FILE.json

Every training stage writes DIR/final.pt (what `use-repro enhance` loads), DIR/curves.csv
(validation: step, metric, value; metrics: the MOS predictor's name, PESQ, magnitude, phase,
time), DIR/train_log.csv (mean training losses per log window, same format) and
DIR/checkpoints/step_*.pt. Run it again with the same arguments after an interruption and it
resumes from the newest checkpoint (also with a larger --steps). A DIR whose checkpoints were
made under other settings (stage, target, data, model, lr, seed, ...) is refused, naming the
keys that differ; --restart-if-changed discards them and starts afresh instead (the DAG's way). The same command runs on a CPU, a GPU, or under
`torchrun --nproc_per_node N -m use_repro.cli train ...` on N GPUs (rank 0 writes).
Trainer settings come from the profile's `train` section (experiments/config/schema.yaml).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The options and the stages' descriptions, without importing the training code (torch):
    # `use-repro train ... --help` prints at once.
    from use_repro.train import arguments as A

    sub = parser.add_subparsers(dest="train_stage", required=True,
                                metavar="{regression,gan,finetune,residual-correlation}")
    A.regression_arguments(sub.add_parser(
        "regression", help="USEMamba on one target with the reconstruction losses",
        description=module_doc("use_repro.train.regression"), formatter_class=argparse.RawDescriptionHelpFormatter))
    for name, summary in (("gan", "two-stage correction: frozen regression + residual generator vs the multi-band discriminator"),
                          ("finetune", "baseline: adversarial fine-tuning of the regression model itself")):
        A.gan_arguments(sub.add_parser(name, help=summary, description=module_doc("use_repro.train.gan"),
                                       formatter_class=argparse.RawDescriptionHelpFormatter))
    A.residual_arguments(sub.add_parser(
        "residual-correlation", help="Section 3.6: correlation of the GAN correction with the regression error"))


def module_doc(module_name: str) -> str:
    """A module's docstring, read from its source without importing it (a stage's help text
    must not load what the stage runs on). Here, not in use_repro.cli, which only names the
    stage modules: the train stage is the one whose subcommands describe themselves this way."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        return ""
    with open(spec.origin, encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read()), clean=False) or ""


def run(args: argparse.Namespace) -> int:
    from use_repro.train import gan, regression
    from use_repro.errors import UsageError
    from use_repro.train.arguments import TrainArgumentError
    from use_repro.train.loop import SettingsChangedError

    try:
        if args.train_stage == "regression":
            return regression.run(args)
        if args.train_stage == "residual-correlation":
            return gan.run_residual(args)
        return gan.run(args, args.train_stage)
    except SettingsChangedError as e:  # a user error, not a crash: the message says what to do
        raise UsageError(f"{args.train_stage}: {e}") from None
    except TrainArgumentError as e:  # the message already names the stage or the option
        raise UsageError(str(e)) from None
