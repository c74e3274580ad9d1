"""Run under torchrun by test_distributed.py, in one process group:

1. `train regression ARGS` with a gradient probe: the gradients of the first update (after
   DDP's all-reduce) go to OUT/grads_rank<R>.pt;
2. `train gan` from that run's final.pt for 3 steps into OUT/gan (the discriminator's used
   bands change from step to step when the ranks' utterances have different rates).
"""
import os
import sys

import torch

from use_repro.cli import stage_parser
from use_repro.train import distributed as D
from use_repro.train import gan, regression
from use_repro.train.arguments import TrainRun


def main(argv: list[str]) -> None:
    parser, _ = stage_parser("train")
    args = parser.parse_args(argv)
    rank = int(os.environ["RANK"])
    seen: list = []

    def probe(name, grads):
        if not seen:
            seen.append(True)
            torch.save(grads, os.path.join(args.out, f"grads_rank{rank}.pt"))

    try:
        regression.train(TrainRun.from_namespace(args), on_gradients=probe)
        gan_argv = ["gan"] + argv[1:] + ["--init", os.path.join(args.out, "final.pt"),
                                         "--out", os.path.join(args.out, "gan"), "--steps", "3"]
        gan.train(TrainRun.from_namespace(parser.parse_args(gan_argv)), "gan")
    finally:
        D.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
