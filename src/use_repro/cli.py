"""`use-repro <stage> ...`: the one command every Snakemake rule calls.

Each stage lives in its own module, which exposes

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int        # exit status

Modules are imported only when their stage runs (or its --help is asked for), so
`use-repro --help` stays fast and a stage's heavy dependencies never slow another down.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# OpenMP waiting (set before torch loads; a user's own OMP_WAIT_POLICY wins). libgomp's default
# (idle threads spin ~300k iterations, then sleep) is the fastest on cores the job has to itself:
# PASSIVE (sleep at once) made the models 1.5-1.8x slower on 2 idle threads (issue 15). Our own
# jobs never oversubscribe (Snakemake gives each `threads:` and sets OMP_NUM_THREADS to it, every
# stage takes --threads, the scheduler runs at most --cores threads), but other processes can:
# on a machine already busier than its cores, spinning threads steal the time the working ones
# need: the default was 2.6x (compiled scan) to 6.7x (torch scan) slower than PASSIVE for the
# mini model's 2-thread training step at load average 6-10 on 2 cores, and 16x (compiled) at
# load 2.2-3.5 (bench/train.py). So PASSIVE when the 1-minute load average already exceeds the
# CPU count.
if "OMP_WAIT_POLICY" not in os.environ and os.getloadavg()[0] > (os.cpu_count() or 1):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

# name -> (module, one-line summary). Order is the order of the pipeline.
STAGES: dict[str, tuple[str, str]] = {
    "corpus": ("use_repro.data.corpus.build",
               "build the embedded corpus (speech, noise, RIR, wind) and its URGENT-format manifests"),
    "simulate": ("use_repro.data.simulate",
                 "URGENT 2025 simulation: `params` samples meta.tsv, `render` writes noisy audio and every target"),
    "vqscore": ("use_repro.quality.cli",
                "VQScore: train the estimator, score speech, filter by threshold, draw histograms"),
    "model-info": ("use_repro.models.info",
                   "print parameter counts and shapes of the paper's models for a config"),
    "train": ("use_repro.train.cli",
              "train: `regression`, `gan` (two-stage correction) or `finetune` (conventional baseline)"),
    "enhance": ("use_repro.enhance",
                "enhance files, folders or scp lists at any rate 8-48 kHz with a trained checkpoint"),
    "evaluate": ("use_repro.metrics.evaluate",
                 "compute the URGENT 2025 metric suite per utterance (CSV + JSON of backends)"),
    "gather": ("use_repro.gather",
               "merge a sharded stage's shards into the files its unsharded job writes, byte for byte"),
    "rank": ("use_repro.metrics.ranking",
             "apply the URGENT 2025 ranking to per-system metric averages"),
    "report": ("use_repro.report.cli",
               "write the paper's tables, figures and the reproduced-vs-reported comparison"),
    "weights": ("use_repro.weights",
                "status, fetch (official location, sha256-pinned) and add the paper-faithful backends' weights"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<11} {summary}" for name, (_, summary) in STAGES.items())
    return argparse.ArgumentParser(
        prog="use-repro",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Reproduce 'Rethinking Training Targets, Architectures and Data Quality for Universal\n"
            "Speech Enhancement' stage by stage. The Snakemake DAG (`snakemake --cores all tables`)\n"
            "calls these; each also runs on its own.\n\nstages:\n" + lines +
            "\n\n`use-repro <stage> --help` explains a stage's options."),
    )


class _ShowDefaults(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, where the help does not already speak of
    its default and there is one to show (not None, False, empty, or a required option's)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or action.required or default is argparse.SUPPRESS
                or default is None or default is False or default == [] or default == ""
                or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))):
            return text
        return f"{text} (default: %(default)s)"


def _parsers(parser: argparse.ArgumentParser):
    """`parser` and every subcommand parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from _parsers(sub)


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make `parser` and its subcommands print defaults in --help, each keeping its own
    description layout (raw or wrapped)."""
    for p in _parsers(parser):
        base = p.formatter_class
        if not issubclass(base, _ShowDefaults):
            p.formatter_class = type(f"Defaults{base.__name__}", (_ShowDefaults, base), {})
    return parser


def stage_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """Build the parser of one stage by importing its module. Stage modules import their heavy
    dependencies (torch, pandas, scipy, the renderer) where they are used, so this stays quick:
    tests/test_cli.py checks that no stage's --help loads them."""
    module_name, summary = STAGES[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"use-repro {name}", description=(module.__doc__ or summary).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(parser)
    if name == "enhance":  # main() resolves the name (weights.resolve_checkpoint)
        for action in parser._actions:
            if "--checkpoint" in action.option_strings:
                action.help = (f"{action.help or 'the model file'}; or `reuse`: the authors' released model, "
                               f"from ./weights (`use-repro weights fetch reuse` puts it there)")
    return show_defaults(parser), module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    top.add_argument("--version", action="version", version=_version())
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    if argv[0] == "--version":
        print(_version())
        return 0
    name = argv[0]
    if name not in STAGES:
        top.print_usage(sys.stderr)
        print(f"use-repro: unknown stage {name!r}; choose from: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    parser, module = stage_parser(name)
    args = parser.parse_args(argv[1:])
    if name == "enhance":  # `--checkpoint reuse`: the authors' release, by name, from ./weights
        from use_repro.weights import WeightsError, resolve_checkpoint

        try:
            args.checkpoint = resolve_checkpoint(args.checkpoint)
        except WeightsError as e:
            parser.error(str(e))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from use_repro.errors import UsageError

    try:
        status = module.run(args)
    except UsageError as e:  # the one place a command's bad input becomes an exit status
        print(f"use-repro {name}: {e}", file=sys.stderr)
        return 2
    return int(status or 0)


def _version() -> str:
    from use_repro import __version__
    return f"use-repro {__version__}"


if __name__ == "__main__":
    sys.exit(main())
