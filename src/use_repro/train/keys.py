"""Which profile keys a training run reads: one declaration for the DAG's settings digest of a
`train` job (experiments/rules/common.smk, train_settings) and the trainer's resume check
(setup.RunContext.identity), so the two cannot drift apart.

Light on purpose (no torch): the Snakefile imports it while it builds the DAG.
"""
from __future__ import annotations


def train_keys(cfg: dict, stage: str, size: str = "", simulate: bool = False) -> tuple[list[str], list[str]]:
    """(include, exclude) dotted key patterns of the settings a `stage` run of model `size`
    reads (config.select_settings), besides its own experiment entry and the seed: the model
    sections the stage builds, the named size it uses (not the others), the trainer section
    without the losses of other stages, and with on-the-fly simulation the simulation section.

    stage: regression, gan or finetune."""
    include = ["device", "weights_dir", "model", "train"] + (["simulation"] if simulate else [])
    exclude = [f"model.sizes.{s}" for s in ((cfg.get("model") or {}).get("sizes") or {}) if s != size]
    if stage == "regression":
        exclude += ["model.generator", "model.discriminator", "train.gan_loss_weights", "train.gan_loss"]
    else:
        exclude += ["train.loss_weights"] + (["model.generator"] if stage == "finetune" else [])
    return include, exclude
