"""The command-line options of the `train` stages, apart from the code that trains.

`use-repro train <stage> --help` builds its parser from here alone, so printing help loads
neither torch nor the training modules (`regression`, `gan` and `setup` re-export these under
their old names).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields


class TrainArgumentError(ValueError):
    """Arguments a training stage cannot run with: both or neither data source, no speech to
    simulate from, an --init model of the wrong kind. The user's to fix, not a crash: the
    training code raises it (a caller from Python can catch it) and `use-repro train` prints
    the message alone and exits 1 (train/cli.py)."""


@dataclass(frozen=True)
class TrainRun:
    """One training run as the training code takes it: the typed form of `use-repro train
    regression|gan|finetune`'s options (the CLI builds it, `from_namespace`; a caller from
    Python builds it directly). The profile's settings the run reads come from `config`, by the
    keys stage_settings.TrainSettings declares. Paths are as given (relative to the working directory).

    config: profile name or settings YAML; out: run folder; target: training target; steps:
    optimizer updates; train_meta / valid_meta: rendered lists (meta.<target>.tsv); simulate:
    on-the-fly simulation instead of train_meta, from corpus_dir or the *_scp manifests;
    speech_list: the VQScore-filtered speech kept; init: a final.pt to start from; size: a key
    of model.sizes; seed, validate_every, device, threads: None/0 take the profile's
    (threads: train.threads);
    restart_if_changed: discard checkpoints of other settings instead of refusing."""

    out: str
    config: str = "mini"
    target: str = "shifted"
    steps: int = 1000
    train_meta: str | None = None
    valid_meta: str | None = None
    simulate: bool = False
    corpus_dir: str | None = None
    speech_scp: tuple[str, ...] | None = None
    noise_scp: tuple[str, ...] | None = None
    rir_scp: tuple[str, ...] | None = None
    wind_scp: tuple[str, ...] | None = None
    speech_list: str | None = None
    init: str | None = None
    size: str = ""
    seed: int | None = None
    validate_every: int | None = None
    device: str | None = None
    threads: int = 0
    restart_if_changed: bool = False

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> "TrainRun":
        """The run the parsed options describe (options the parser lacks keep their defaults)."""
        values = {}
        for f in fields(cls):
            if hasattr(ns, f.name):
                v = getattr(ns, f.name)
                values[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**values)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training data (a rendered meta.tsv, or on-the-fly simulation)")
    g.add_argument("--train-meta", help="rendered training meta.tsv (see `use-repro simulate render`)")
    g.add_argument("--simulate", action="store_true",
                   help="simulate on the fly with the profile's `simulation` settings instead of --train-meta")
    g.add_argument("--corpus-dir", help="with --simulate: folder of the train split's manifests")
    for kind in ("speech", "noise", "rir", "wind"):
        g.add_argument(f"--{kind}-scp", nargs="+", help=f"with --simulate: {kind} manifest(s)")
    g.add_argument("--speech-list", help="speech scp (e.g. a VQScore-filtered list): rows whose "
                   "speech_uid it lacks are not trained on")
    p.add_argument("--valid-meta", help="rendered validation meta.tsv (curves.csv); none: no validation")
    p.add_argument("--restart-if-changed", action="store_true",
                   help="when --out holds checkpoints made under other settings (target, data, model, "
                        "lr, seed...; not steps), discard them and start afresh instead of refusing")


def common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="mini", help="profile name or YAML path")
    add_data_arguments(p)
    p.add_argument("--target", default="shifted",
                   help="training target: early, shifted, anechoic or early<W>ms (default: shifted)")
    p.add_argument("--size", default="", help="model size, a key of model.sizes (default: the model section's)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (optimizer updates)")
    p.add_argument("--out", required=True, help="run folder: final.pt, curves.csv, train_log.csv, checkpoints/")
    p.add_argument("--seed", type=int, default=None, help="master seed (default: the profile's)")
    p.add_argument("--validate-every", type=int, default=None,
                   help="validate every N steps (default: the profile's train.validate_every)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="default: the profile's `device`")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads of the run's math (0: the profile's train.threads). The weights depend on "
                        "it, so a count given here is part of the run's identity (a checkpoint of another count "
                        "does not resume)")


def regression_arguments(p: argparse.ArgumentParser) -> None:
    common_arguments(p)
    p.add_argument("--init", help="start from this trained USEMamba (final.pt) instead of a fresh model")


def gan_arguments(p: argparse.ArgumentParser) -> None:
    common_arguments(p)
    p.add_argument("--init", required=True,
                   help="the trained regression model (final.pt of `train regression`); for `gan` also "
                        "a two-stage final.pt, whose generator then keeps training")


def residual_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="final.pt of a `train gan` run")
    p.add_argument("--test-meta", required=True, help="rendered test meta.tsv")
    p.add_argument("--target", default=None, help="reference target (default: the run's training target)")
    p.add_argument("--domain", choices=("compressed", "linear"), default="compressed",
                   help="magnitude domain of the residuals (default: log1p-compressed, the model's)")
    p.add_argument("--limit", type=int, default=0, help="use the first N test rows by id (0: all)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", required=True, help="JSON file")
