"""Run under torchrun by test_distributed.py: `train regression` with a gradient probe.

Saves the gradients of the first update (after DDP's all-reduce) to OUT/grads_rank<R>.pt.
"""
import os
import sys

import torch

from use_repro.cli import stage_parser
from use_repro.train import distributed as D
from use_repro.train import regression


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
        regression.train(args, on_gradients=probe)
    finally:
        D.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
