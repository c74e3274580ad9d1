"""What every training stage sets up the same way: config, processes, seeds, data, validation.

Seeds. The master seed (`seed` in the profile, or `--seed`) gives the model initialisation
seed and the data seed of a stage via `derive_seed(seed, "train.init"|"train.data", stage)`,
so runs of one stage that differ only in their target see the same noisy inputs in the same
order, cropped the same way (a controlled comparison, as Figure 3 needs).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from use_repro.config import load_config
from use_repro.fs import sha256_file
from use_repro.seeding import derive_seed, seed_everything
from use_repro.stage_settings import TrainSettings, from_profile
from use_repro.train import distributed as D
from use_repro.train.arguments import TrainArgumentError, TrainRun
from use_repro.train.arguments import add_data_arguments  # noqa: F401 (re-exported)
from use_repro.train.loop import LoopSettings

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    stage: str
    profile: TrainSettings  # what the run reads of the profile (stage_settings)
    info: D.DistInfo
    settings: LoopSettings
    out: Path
    seed: int
    target: str

    @property
    def init_seed(self) -> int:
        return derive_seed(self.seed, "train.init", self.stage)

    @property
    def data_seed(self) -> int:
        return derive_seed(self.seed, "train.data", self.stage)

    def meta(self, args: TrainRun) -> dict:
        """Stored in checkpoints and final.pt: enough to know what made them."""
        return {"stage": self.stage, "target": self.target, "seed": self.seed,
                "args": {k: v for k, v in asdict(args).items() if _jsonable(v)},
                "config": self.profile.held(), "identity": self.identity(args)}

    def identity(self, args: TrainRun) -> dict:
        """Every setting the run's weights and curves depend on, except `steps` (a longer run
        continues a shorter one): the trainer resumes only from checkpoints of an equal identity.
        Files enter by content (a moved or re-rendered data list counts by what it holds);
        execution-only keys (threads, checkpoint cadence, workers: `x-digest: execution` in
        schema.yaml) do not."""
        data = {"train_meta": _file_digest(getattr(args, "train_meta", None)),
                "speech_list": _file_digest(getattr(args, "speech_list", None)),
                "valid_meta": _file_digest(getattr(args, "valid_meta", None)),
                "simulate": bool(getattr(args, "simulate", False))}
        if data["simulate"]:
            manifests = {k: [_file_digest(p) for p in (getattr(args, f"{k}_scp", None) or [])]
                         for k in ("speech", "noise", "rir", "wind")}
            if getattr(args, "corpus_dir", None):
                from use_repro.data.simulate import find_manifest

                for k in manifests:
                    manifests[k] += [_file_digest(p) for p in find_manifest(args.corpus_dir, k, "train")]
            data["manifests"] = manifests
        # what the DAG digests for this run (its TrainSettings), so a run folder resumes exactly
        # when the DAG considers the run unchanged (besides its steps)
        return {"stage": self.stage, "target": self.target, "seed": self.seed,
                "size": getattr(args, "size", "") or "",
                "init": _file_digest(getattr(args, "init", None)),
                "device": getattr(args, "device", None) or self.profile.device,
                "world_size": self.info.world_size,
                **({"threads": args.threads} if getattr(args, "threads", 0) else {}),
                "settings": self.profile.selection(), "data": data}


def _file_digest(path: str | Path | None) -> str | None:
    """sha256 of a file's bytes (None for no file)."""
    return sha256_file(path) if path else None


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, list, tuple))


def context(args: TrainRun, stage: str, target: str) -> RunContext:
    """Load the profile, join the process group, set threads and seeds."""
    cfg = load_config(args.config)
    if getattr(args, "validate_every", None) is not None:
        # the run's own cadence (an experiment's validate_every): part of its identity, since
        # curves.csv holds the steps validated
        cfg = {**cfg, "train": {**cfg["train"], "validate_every": int(args.validate_every)}}
    profile = from_profile(TrainSettings, cfg, args.config, stage=stage, size=getattr(args, "size", "") or "",
                           simulate=bool(getattr(args, "simulate", False)))
    # the run's math on a set number of threads (train.threads, or --threads, which then enters
    # the run's identity): the weights depend on it, so never on the cores the job was given
    torch.set_num_threads(int(getattr(args, "threads", 0) or profile.train["threads"]))
    info = D.init_distributed(getattr(args, "device", None) or profile.device)
    seed = int(profile.seed if getattr(args, "seed", None) is None else args.seed)
    settings = LoopSettings.from_train(profile.train, steps=args.steps, seed=seed)
    settings.restart_if_changed = bool(getattr(args, "restart_if_changed", False))
    out = Path(args.out)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    return RunContext(stage, profile, info, settings, out, seed, target)


SCAN_RECORD = "scan_backend.json"


def record_scan_backend(model: torch.nn.Module, ctx: RunContext) -> list[str]:
    """Log which selective scan the model's Mamba layers run on this device and record it in
    the run folder (``scan_backend.json``, read by the provenance report). Returns the backends."""
    import json

    from use_repro.fs import write_text_atomic
    from use_repro.models.mamba import backend_label, model_scan_backends

    names = model_scan_backends(model, ctx.info.device)
    labels = [backend_label(n) for n in names]
    log.info("%s: selective scan on %s: %s", ctx.stage, ctx.info.device,
             ", ".join(labels) or "none (no Mamba layers)")
    if ctx.info.is_main:
        write_text_atomic(ctx.out / SCAN_RECORD, json.dumps(
            {"stage": ctx.stage, "device": str(ctx.info.device), "backends": names, "labels": labels},
            indent=1) + "\n")
    return names


def build(factory: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    """A model initialised from `seed` (the same on every rank)."""
    seed_everything(seed)
    return factory()


# --- data ------------------------------------------------------------------------------------

def training_dataset(args: TrainRun, ctx: RunContext):
    """The stage's training Dataset (MetaDataset or SimulatedDataset)."""
    from use_repro.data.dataset import MetaDataset, SimulatedDataset, load_rows, speech_uids

    seg = float(ctx.profile.train.get("segment_seconds", 0) or 0)
    max_rate = int(ctx.profile.train.get("segment_max_rate", 0) or 0) or None
    if args.simulate == bool(args.train_meta):
        raise TrainArgumentError("train: give exactly one of --train-meta and --simulate")
    if args.train_meta:
        from use_repro.data.dataset import SKIP_RECORD, checked_rows

        rejected: list[tuple[str, str]] = []  # malformed lines: skipped and recorded, not fatal
        rows = load_rows(args.train_meta, ctx.target, args.speech_list, rejected=rejected)
        # every row's audio is decoded before step 0 (bad ones recorded in the run folder)
        rows = checked_rows(rows, ctx.out, args.train_meta, rejected=rejected)
        return MetaDataset(rows, seg, skip_record=ctx.out / SKIP_RECORD, segment_max_rate=max_rate)
    from use_repro.data.params import SimConfig

    speech, noise, rir, wind = simulation_sources(args)
    if args.speech_list:
        keep = speech_uids(args.speech_list)
        speech = [s for s in speech if s.uid in keep]
    from use_repro.data.dataset import SKIP_RECORD

    return SimulatedDataset(speech, noise, rir, wind, SimConfig.from_config(ctx.profile.simulation), ctx.target, seg,
                            skip_record=ctx.out / SKIP_RECORD, segment_max_rate=max_rate)


def simulation_sources(args: TrainRun) -> tuple[list, list, list, list]:
    """(speech items, noise, rir, wind entries) of the train split for on-the-fly simulation:
    explicit --*-scp manifests, else those found under --corpus-dir as `simulate params` finds them."""
    from use_repro.audio.io import AudioError, audio_info
    from use_repro.data.manifest import read_scp, resolve_entries
    from use_repro.data.params import SpeechItem
    from use_repro.data.simulate import find_manifest

    def entries(kind: str) -> list:
        paths = getattr(args, f"{kind}_scp") or (find_manifest(args.corpus_dir, kind, "train")
                                                  if args.corpus_dir else [])
        return [e for p in paths for e in resolve_entries(read_scp(p), p)]

    speech = []
    for e in entries("speech"):
        try:
            fs, frames = audio_info(e.path)
        except AudioError as err:
            log.warning("on-the-fly simulation: speech skipped: %s", err)
            continue
        speech.append(SpeechItem(e.uid, fs, e.path, frames))
    if not speech:
        raise TrainArgumentError("train --simulate: no speech manifest; give --corpus-dir or --speech-scp")
    return speech, entries("noise"), entries("rir"), entries("wind")


def batches(dataset, ctx: RunContext) -> Callable[[int], Iterator[dict]]:
    from use_repro.data.dataset import batches_from

    return batches_from(dataset, ctx.data_seed, ctx.info.rank, ctx.info.world_size,
                        int(ctx.profile.train.get("num_workers", 0)))


def validator(args: TrainRun, ctx: RunContext):
    """A Validator over `--valid-meta` (None without one, which also turns validation off)."""
    if not args.valid_meta:
        ctx.settings.validate_every = 0
        return None
    from use_repro.data.dataset import checked_rows, load_rows
    from use_repro.train.validation import Validator

    t = ctx.profile.train
    limit = int(t.get("valid_utterances", 0)) or None
    rows = checked_rows(load_rows(args.valid_meta, ctx.target, limit=limit), ctx.out, args.valid_meta,
                        record="skipped_valid_rows.tsv")
    return Validator(rows, t.get("valid_metrics", ("mos", "pesq", "magnitude", "phase", "time")),
                     ctx.profile.weights_dir or "weights", ctx.info)
