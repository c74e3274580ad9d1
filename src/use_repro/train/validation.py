"""Validation during training: the learning curves of Figures 3 and 9.

Every `validate_every` steps the model enhances the validation utterances (whole utterances,
no crop, the same unit-RMS input scaling as training) and these are averaged over them:

- the MOS predictor available (`metrics.registry.validation_mos`): UTMOS with its paper
  weights, else the embedded predictor, and the column is named after whichever it is;
- `PESQ` against the run's training target (narrow band at 8 kHz, wide band otherwise);
- the losses `magnitude`, `phase`, `time` (and `complex`, `consistency` if asked) between the
  enhanced waveform and the target, computed by the same loss functions as training, on the
  STFT of the enhanced waveform, so the regression, fine-tuned and two-stage models are
  compared on the same footing (Figure 9).

Utterances are shared out over ranks and the per-utterance values gathered on rank 0, which
returns them with their means (:class:`ValidationResult`): the trainer writes the means to
`curves.csv` and every utterance's values to `valid_scores.csv`, from which the report puts a
paired interval on a difference between two runs' curves. A metric whose backend is missing (no
MOS predictor installed, no `pesq`) is left out with one warning.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from use_repro.audio.io import read_audio
from use_repro.data.dataset import unit_rms_gain
from use_repro.train import distributed as D

log = logging.getLogger(__name__)

LOSS_METRICS = ("magnitude", "phase", "complex", "time", "consistency")
DEFAULT_METRICS = ("mos", "pesq", "magnitude", "phase", "time")

WaveFn = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class ValidationResult:
    """One validation pass: the mean of each metric over the utterances (NaN-free values only),
    and each utterance's own values as (utterance id, {metric: value}) in row order."""
    means: dict[str, float]
    per_utterance: list[tuple[str, dict[str, float]]] = field(default_factory=list)


class Validator:
    """`validator(fn) -> ValidationResult` on rank 0 (None elsewhere); `fn`: [1, T] -> [1, T]."""

    def __init__(self, rows: Sequence[dict], metrics: Sequence[str] = DEFAULT_METRICS,
                 weights_dir: str | None = "weights", info: D.DistInfo | None = None):
        self.rows = list(rows)
        self.metrics = list(metrics)
        self.info = info or D.DistInfo(0, 1, 0, torch.device("cpu"))
        self.weights_dir = weights_dir
        self._mos = None  # (column, fn), loaded on first use
        self._cache: dict[int, tuple] = {}
        self._missing: set[str] = set()

    def _mos_backend(self):
        if self._mos is None:
            from use_repro.metrics.registry import validation_mos

            self._mos = validation_mos(self.weights_dir)
            log.info("validation MOS predictor: %s", self._mos[0])
        return self._mos

    def _pair(self, i: int):
        """(fs, noisy, target, gain): the pair scaled as in training (noisy at unit RMS) and the
        gain that scaling applied."""
        if i not in self._cache:  # validation sets are small: keep the decoded audio
            row = self.rows[i]
            noisy, fs = read_audio(row["noisy"])
            ref, _ = read_audio(row["clean"])
            n = min(len(noisy), len(ref))
            gain = unit_rms_gain(noisy[:n])
            self._cache[i] = (fs, (noisy[:n] * gain).astype(np.float32), (ref[:n] * gain).astype(np.float32), gain)
        return self._cache[i]

    def _skip(self, metric: str, err: Exception) -> None:
        if metric not in self._missing:
            log.warning("validation: %s left out (%s)", metric, err)
            self._missing.add(metric)

    def score(self, est: np.ndarray, ref: np.ndarray, fs: int, gain: float = 1.0) -> dict[str, float]:
        """All metrics of one utterance: `est`, `ref` [T] float32 at `fs`, both scaled by `gain`
        (the losses are taken there, as in training; PESQ and MOS at the original level)."""
        out: dict[str, float] = {}
        wanted_losses = [m for m in self.metrics if m in LOSS_METRICS]
        if wanted_losses:
            from use_repro.train.losses import reconstruction_losses

            e = torch.from_numpy(est)[None]
            r = torch.from_numpy(ref)[None]
            vals = reconstruction_losses(e, r, fs, names=wanted_losses)
            out.update({k: float(v) for k, v in vals.items()})
        if "pesq" in self.metrics and "pesq" not in self._missing:
            try:
                from use_repro.metrics.intrusive import pesq_score

                out["PESQ"] = pesq_score(ref / gain, est / gain, fs)
            except (ImportError, ValueError) as err:
                self._skip("pesq", err)
        if "mos" in self.metrics and "mos" not in self._missing:
            try:
                name, fn = self._mos_backend()
                out[name] = fn(est / gain, fs)
            except (ImportError, RuntimeError) as err:
                self._skip("mos", err)
        return out

    def __call__(self, fn: WaveFn) -> ValidationResult | None:
        mine = range(self.info.rank, len(self.rows), self.info.world_size)
        per_utt = []
        for i in mine:
            fs, noisy, ref, gain = self._pair(i)
            x = torch.from_numpy(noisy).to(self.info.device)[None]
            with torch.no_grad():
                est = fn(x, fs)[0].float().cpu().numpy()
            per_utt.append((i, self.score(est, ref, fs, gain)))
        gathered = sorted(u for part in D.all_gather_objects(per_utt) for u in part)
        if not self.info.is_main:
            return None
        keys = sorted({k for _, u in gathered for k in u})
        means = {}
        for k in keys:
            vals = [u[k] for _, u in gathered if k in u and math.isfinite(u[k])]
            means[k] = float(np.mean(vals)) if vals else float("nan")
        return ValidationResult(means, [(str(self.rows[i]["id"]), u) for i, u in gathered])
