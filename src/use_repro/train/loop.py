"""The training loop every stage shares: optimisers, AMP, clipping, checkpoints, resume, curves.

A stage supplies a `Task` (its models and one `training_step`) and a function that yields
batches from a given iteration on; `Trainer.fit()` does the rest:

- AdamW per optimiser group (the paper: lr 2e-4 for the regression model, the generator and the
  discriminator) with an exponential per-step decay (`lr_decay`, 1.0 = constant).
- `training_step(batch, update)` calls `update(name, loss)` once per optimiser (the GAN calls it
  for the discriminator, then for the generator). `update` checks the loss on every rank,
  back-propagates (scaled under fp16), clips the gradient norm, steps the optimiser and its
  scheduler. A non-finite loss or gradient skips that update and is counted; more than
  `max_consecutive_nonfinite` bad steps in a row stop the run with `NonFiniteLossError`.
- Mixed precision (bf16, or fp16 with a gradient scaler) on CUDA only; CPU runs in float32.
- Every `checkpoint_every` steps rank 0 writes `checkpoints/step_XXXXXXXX.pt` atomically (temp
  file + rename) and keeps the newest `keep_last`. A checkpoint holds the task's weights, every
  optimiser, scheduler and gradient-scaler state, the RNG states of every rank (Python, NumPy,
  torch, CUDA), the counters and the run's metadata. The data position is the step itself: the
  sampler derives the order of utterances and every random crop from (seed, draw number), so
  `batches(step)` resumes the stream exactly. A run killed at any moment restarts from its last
  checkpoint and, in deterministic mode, ends with the same parameters as an uninterrupted run.
- A run folder is bound to its settings: `meta["identity"]` (setup.RunContext.identity: stage,
  target, data, model, trainer settings, seed...; not `steps`) is stored in every checkpoint, and
  the trainer resumes only from a checkpoint of an equal identity. Otherwise it refuses with
  `SettingsChangedError` naming the differing keys, or, with `restart_if_changed`, discards the
  folder's checkpoints, curves and final.pt and starts afresh. More steps resume; fewer steps
  resume from the newest checkpoint at or before the new end (later ones are deleted).
- Every `validate_every` steps (and at step 0 and the last step) the stage's validation runs and
  rank 0 appends (step, metric, value) rows to `curves.csv` and, when the validation returns
  per-utterance values (`validation.ValidationResult`), (step, utt, metric, value) rows to
  `valid_scores.csv`; training-loss means per log window go to `train_log.csv` as in
  `curves.csv`. All three are rewritten atomically; every checkpoint holds their rows so far, and a resumed run rewrites them from it (rows after the checkpoint's
  step are gone, so nothing is counted twice; rows before it survive the files' deletion, which
  Snakemake does to an interrupted job's outputs before rerunning it).
- A tqdm bar on a terminal; otherwise one log line every `log_every` steps.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import nn

from use_repro.fs import atomic_path
from use_repro.train import distributed as D

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "use_repro.train.checkpoint/1"
_CKPT_RE = re.compile(r"^step_(\d+)\.pt$")

Update = Callable[[str, torch.Tensor], bool]


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a NaN/inf loss or gradient."""


class SettingsChangedError(RuntimeError):
    """The run folder holds checkpoints made under other settings."""


class Task(Protocol):
    """What a stage trains. Tensors live on the trainer's device."""

    def param_groups(self) -> dict[str, dict[str, nn.Parameter]]:
        """Optimiser name -> {parameter name: parameter} it updates (frozen ones are skipped)."""

    def training_step(self, batch: Any, update: Update) -> dict[str, float]:
        """Forward, losses, and one `update(name, loss)` per optimiser; returns named loss values."""

    def state_dict(self) -> dict:
        """Everything of the models needed to resume (trainable and frozen weights)."""

    def load_state_dict(self, state: dict) -> None: ...

    def train(self, mode: bool = True) -> Any: ...

    def export(self) -> dict:
        """The payload of `final.pt`: what `use-repro enhance` loads."""


@dataclass
class LoopSettings:
    """The trainer's knobs; `from_train` reads them from the profile's `train` section."""

    steps: int
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    lr_decay: float = 1.0
    grad_clip: float = 10.0
    checkpoint_every: int = 1000
    keep_last: int = 3
    validate_every: int = 1000
    log_every: int = 100
    max_consecutive_nonfinite: int = 10
    amp: bool = True
    amp_dtype: str = "bf16"
    deterministic: bool = False
    seed: int = 0
    # not a profile key: the CLI's --restart-if-changed (checkpoints of other settings are
    # discarded instead of refused)
    restart_if_changed: bool = False

    @classmethod
    def from_train(cls, train: dict, steps: int, seed: int) -> "LoopSettings":
        """From the profile's `train` section (a TrainSettings' `train`), the run's steps and seed."""
        names = {f for f in cls.__dataclass_fields__ if f not in ("steps", "seed", "restart_if_changed")}
        kw = {k: train[k] for k in names if k in train}
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        return cls(steps=int(steps), seed=int(seed), **kw)


@dataclass
class FitResult:
    step: int
    history: list[dict[str, float]] = field(default_factory=list)  # this process's steps only
    nonfinite_total: int = 0
    resumed_from: int | None = None


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic kernels inside (bitwise-repeatable on CPU; on CUDA as far as torch allows);
    the previous global settings are restored on exit."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


# --- RNG state -------------------------------------------------------------------------------

def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- curves ----------------------------------------------------------------------------------

class CurveFile:
    """A `step,<keys...>,value` CSV rewritten atomically on every change (it stays small): rows
    are (step, key strings..., value); `curves.csv` has the key `metric`, `valid_scores.csv`
    the keys `utt`, `metric`."""

    def __init__(self, path: str | os.PathLike, keys: tuple[str, ...] = ("metric",)):
        self.path = Path(path)
        self.header = ("step", *keys, "value")

    def rows(self) -> list[tuple]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return [(int(r["step"]), *(r[k] for k in self.header[1:-1]), float(r["value"]))
                    for r in csv.DictReader(f)]

    def write(self, rows: Iterable[tuple]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(self.header)
            w.writerows((*r[:-1], repr(float(r[-1]))) for r in rows)

    def append(self, step: int, metrics: dict[str, float]) -> None:
        self.write(self.rows() + [(step, k, float(v)) for k, v in metrics.items()])

    def append_rows(self, rows: Iterable[tuple]) -> None:
        self.write(self.rows() + [tuple(r) for r in rows])

    def ensure(self) -> None:
        """Create the file (header only) if it does not exist."""
        if not self.path.exists():
            self.write([])

    def truncate_after(self, step: int) -> None:
        """Drop rows newer than `step` (a resumed run recomputes them)."""
        if self.path.exists():
            self.write(r for r in self.rows() if r[0] <= step)


# --- checkpoints -----------------------------------------------------------------------------

def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step_{step:08d}.pt"


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every finished checkpoint, oldest first (temp files are ignored)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a use-repro training checkpoint")
    return state


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; an unreadable one is reported and skipped."""
    for _, path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return path, load_checkpoint(path)
        except Exception as e:  # noqa: BLE001 - any unreadable file falls back to an older one
            log.warning("%s: unreadable checkpoint, trying an older one (%s)", path, e)
    return None


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> Path:
    # through a file object: torch.save names the archive's inner folder after a path's file
    # name (here a random temp name), so the same checkpoint would differ byte for byte
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(path)


# --- the trainer -----------------------------------------------------------------------------

class Trainer:
    """Runs a `Task` for `settings.steps` steps, resuming from `out_dir/checkpoints` if present.

    `batches(start)` must yield the batches of steps start, start+1, ... for this rank.
    `validate(step)` runs on every rank (it may share out the utterances) and returns the
    metrics on rank 0 (anything on the others). `on_gradients(name, {param: grad})` is called
    after every backward pass, before clipping, with the (rank-averaged) gradients - a probe
    for tests and debugging. `meta` is stored in every checkpoint (config, stage, arguments).
    """

    def __init__(self, task: Task, batches: Callable[[int], Iterator[Any]], settings: LoopSettings,
                 out_dir: str | os.PathLike, info: D.DistInfo | None = None,
                 validate: Callable[[int], dict[str, float] | None] | None = None,
                 on_gradients: Callable[[str, dict[str, torch.Tensor]], None] | None = None,
                 meta: dict | None = None, desc: str = "train"):
        self.task = task
        self.batches = batches
        self.s = settings
        self.out = Path(out_dir)
        self.info = info or D.DistInfo(0, 1, 0, torch.device("cpu"))
        self.validate = validate
        self.on_gradients = on_gradients
        self.meta = meta or {}
        self.desc = desc
        self.ckpt_dir = self.out / "checkpoints"
        self.curves = CurveFile(self.out / "curves.csv")
        self.train_log = CurveFile(self.out / "train_log.csv")
        self.valid_scores = CurveFile(self.out / "valid_scores.csv", keys=("utt", "metric"))

        groups = task.param_groups()
        self.named = {k: {n: p for n, p in v.items() if p.requires_grad} for k, v in groups.items()}
        self.params = {k: list(v.values()) for k, v in self.named.items()}
        self.optimizers = {
            k: torch.optim.AdamW(v, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)
            for k, v in self.params.items()}
        self.schedulers = {k: torch.optim.lr_scheduler.ExponentialLR(o, gamma=settings.lr_decay)
                           for k, o in self.optimizers.items()}
        cuda = self.info.device.type == "cuda"
        self.amp = bool(settings.amp and cuda)
        self.amp_dtype = torch.float16 if settings.amp_dtype == "fp16" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self.step = 0
        self.nonfinite_total = 0
        self.consecutive_nonfinite = 0
        self._bad_this_step = False

    # -- state --
    def _state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "task": self.task.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": D.all_gather_objects(rng_state()),
            "counters": {"nonfinite_total": self.nonfinite_total,
                         "consecutive_nonfinite": self.consecutive_nonfinite},
            "world_size": self.info.world_size,
            "meta": self.meta,
            # the curve rows so far: Snakemake deletes a job's outputs (curves.csv) before it
            # reruns an interrupted job, and a resumed run must not lose the rows before its step
            "curves": self.curves.rows() if self.info.is_main else None,
            "train_log": self.train_log.rows() if self.info.is_main else None,
            "valid_scores": self.valid_scores.rows() if self.info.is_main else None,
        }

    def _restore(self, state: dict) -> None:
        self.task.load_state_dict(state["task"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.nonfinite_total = int(state["counters"]["nonfinite_total"])
        self.consecutive_nonfinite = int(state["counters"]["consecutive_nonfinite"])
        rngs = state["rng"]
        if state.get("world_size") != self.info.world_size:
            log.warning("checkpoint was written by %s process(es), this run has %d: the data order "
                        "and RNG streams differ from an uninterrupted run",
                        state.get("world_size"), self.info.world_size)
        set_rng_state(rngs[self.info.rank % len(rngs)])

    def save_checkpoint(self) -> None:
        state = self._state()  # collective (gathers RNG states): every rank calls it
        if self.info.is_main:
            path = save_torch_atomic(state, checkpoint_path(self.ckpt_dir, self.step))
            for _, old in list_checkpoints(self.ckpt_dir)[:-max(1, self.s.keep_last)]:
                old.unlink(missing_ok=True)
            log.info("checkpoint %s", path)
        D.barrier()

    def _plan_resume(self) -> tuple[str, Any]:
        """Rank 0's decision: ("resume", (step, state)), ("fresh", None) or ("refuse", message)."""
        found = latest_checkpoint(self.ckpt_dir)
        if found is not None:
            old, new = (found[1].get("meta") or {}).get("identity"), self.meta.get("identity")
            if old != new:
                from use_repro.config import settings_diff

                diff = settings_diff(old, new) if old is not None else ["identity: none recorded"]
                msg = (f"{self.out}: its checkpoints were made under other settings "
                       f"({'; '.join(diff)})")
                if not self.s.restart_if_changed:
                    return "refuse", (f"{msg}; train into another --out, or give --restart-if-changed "
                                      f"to discard them and start afresh")
                log.warning("%s: discarding its checkpoints, curves and final.pt, starting afresh", msg)
                for _, p in list_checkpoints(self.ckpt_dir):
                    p.unlink()
                (self.out / "final.pt").unlink(missing_ok=True)
                found = None
        if found is not None and int(found[1]["step"]) > self.s.steps:
            later = [p for s, p in list_checkpoints(self.ckpt_dir) if s > self.s.steps]
            log.warning("%s: %d checkpoint(s) past the run's %d steps deleted (a longer run of the same "
                        "settings)", self.out, len(later), self.s.steps)
            for p in later:
                p.unlink()
            found = latest_checkpoint(self.ckpt_dir)
        if found is None:
            # rows of a run that stopped before its first checkpoint (or of other settings)
            self.curves.truncate_after(-1)
            self.train_log.truncate_after(-1)
            self.valid_scores.truncate_after(-1)
            return "fresh", None
        return "resume", (int(found[1]["step"]), found[1])

    def _resume(self) -> int | None:
        kind, value = self._plan_resume() if self.info.is_main else (None, None)
        state = value[1] if kind == "resume" else None  # rank 0 has loaded it already
        # every rank learns the decision; the checkpoint itself is not sent
        kind, value = D.broadcast_object((kind, value[0] if kind == "resume" else value))
        if kind == "refuse":
            raise SettingsChangedError(value)
        if kind == "fresh":
            return None
        step = value
        # Every rank reads the same file (rank 0 already vetted it); shared storage is assumed,
        # as it is for torchrun on one machine and for SLURM jobs on a cluster file system.
        state = state if self.info.is_main else load_checkpoint(checkpoint_path(self.ckpt_dir, step))
        self._restore(state)
        if self.info.is_main:
            for curve, key in ((self.curves, "curves"), (self.train_log, "train_log"),
                               (self.valid_scores, "valid_scores")):
                if state.get(key) is not None:  # rows up to the checkpoint, as they were then
                    curve.write([tuple(r) for r in state[key] if r[0] <= self.step])
                else:  # a checkpoint of an older version: keep what the file has
                    curve.truncate_after(self.step)
            log.info("resumed from %s at step %d", checkpoint_path(self.ckpt_dir, step), self.step)
        return self.step

    # -- one optimiser update --
    def _update(self, name: str, loss: torch.Tensor) -> bool:
        opt = self.optimizers[name]
        params = self.params[name]
        opt.zero_grad(set_to_none=True)
        bad = D.any_rank(not bool(torch.isfinite(loss.detach()).all()), self.info.device)
        if bad:
            if self.info.distributed:
                loss.backward()  # keeps DDP's reducer in step on every rank; gradients are dropped
                opt.zero_grad(set_to_none=True)
            self._bad_this_step = True
            return False
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(opt)
        if self.on_gradients is not None:
            self.on_gradients(name, {n: p.grad.detach().clone()
                                     for n, p in self.named[name].items() if p.grad is not None})
        max_norm = self.s.grad_clip if self.s.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if not torch.isfinite(norm) and not self.scaler.is_enabled():
            # The gradient is rank-averaged already, so every rank takes this branch together.
            opt.zero_grad(set_to_none=True)
            self._bad_this_step = True
            return False
        self.scaler.step(opt)  # under fp16 the scaler itself skips a step with inf gradients
        self.schedulers[name].step()
        return True

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    # -- validation and logging --
    def _validate(self) -> None:
        if self.validate is None:
            return
        self.task.train(False)
        try:
            with torch.no_grad():
                metrics = self.validate(self.step)
        finally:
            self.task.train(True)
        if self.info.is_main and metrics:
            per_utt = getattr(metrics, "per_utterance", None)
            metrics = getattr(metrics, "means", metrics)
            self.curves.append(self.step, metrics)
            if per_utt is not None:
                self.valid_scores.append_rows((self.step, utt, k, float(v))
                                              for utt, vals in per_utt for k, v in vals.items())
            log.info("validation step %d: %s", self.step,
                     " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        D.barrier()

    def _due(self, every: int) -> bool:
        return self.step == self.s.steps or (every > 0 and self.step % every == 0)

    def fit(self) -> FitResult:
        with deterministic_mode(self.s.deterministic):
            return self._fit()

    def _fit(self) -> FitResult:
        resumed = self._resume()
        result = FitResult(step=self.step, resumed_from=resumed)
        self.task.train(True)
        if resumed is None and self.s.validate_every > 0:
            self._validate()  # step 0: the starting point of every curve
        bar = _Progress(self.s.steps, self.step, self.desc, self.s.log_every, self.info.is_main)
        window: list[dict[str, float]] = []
        it = self.batches(self.step)
        try:
            while self.step < self.s.steps:
                batch = next(it)
                self._bad_this_step = False
                with self._autocast():
                    logs = self.task.training_step(batch, self._update)
                if self.scaler.is_enabled():
                    self.scaler.update()
                self.step += 1
                if self._bad_this_step:
                    self.nonfinite_total += 1
                    self.consecutive_nonfinite += 1
                    log.warning("step %d: non-finite loss or gradient, update skipped (%s)", self.step,
                                " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
                    if self.consecutive_nonfinite > self.s.max_consecutive_nonfinite:
                        raise NonFiniteLossError(
                            f"{self.out}: {self.consecutive_nonfinite} consecutive steps with a "
                            f"non-finite loss or gradient (last at step {self.step}; "
                            f"train.max_consecutive_nonfinite = {self.s.max_consecutive_nonfinite}). "
                            f"Last good checkpoint: {self._last_ckpt_name()}")
                else:
                    self.consecutive_nonfinite = 0
                    result.history.append(logs)
                    window.append(logs)
                lr = self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"]
                if bar.tick(self.step, logs, lr, self.nonfinite_total) and window:
                    if self.info.is_main:
                        self.train_log.append(self.step, _mean_dicts(window))
                    window = []
                if self._due(self.s.validate_every):
                    self._validate()
                if self._due(self.s.checkpoint_every):
                    self.save_checkpoint()
        finally:
            bar.close()
        if self.info.is_main:
            self.curves.ensure()  # a run without validation still has (an empty) curves.csv
            self.valid_scores.ensure()
            save_torch_atomic(self.task.export(), self.out / "final.pt")
            log.info("%s: %d steps done (%d skipped as non-finite); wrote %s", self.desc, self.step,
                     self.nonfinite_total, self.out / "final.pt")
        D.barrier()
        result.step = self.step
        result.nonfinite_total = self.nonfinite_total
        return result

    def _last_ckpt_name(self) -> str:
        found = list_checkpoints(self.ckpt_dir)
        return str(found[-1][1]) if found else "none"


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for r in rows for k in r}
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in sorted(keys)}


class _Progress:
    """tqdm on a terminal; a log line every `log_every` steps otherwise. Only rank 0 shows it.

    `tick` returns True when a log window closes (every `log_every` steps and at the end).
    """

    def __init__(self, total: int, start: int, desc: str, log_every: int, show: bool):
        self.total, self.log_every, self.show = total, max(1, log_every), show
        self.t0, self.start = time.perf_counter(), start
        self.bar = None
        if show and sys.stderr.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True)
        self.desc = desc

    def tick(self, step: int, logs: dict[str, float], lr: float, skipped: int) -> bool:
        due = step % self.log_every == 0 or step == self.total
        if self.bar is not None:
            self.bar.update(1)
            if due:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()}, refresh=False)
        elif self.show and due:
            rate = (step - self.start) / max(1e-9, time.perf_counter() - self.t0)
            log.info("%s step %d/%d %s lr=%.3g %.2f steps/s non-finite=%d", self.desc, step, self.total,
                     " ".join(f"{k}={v:.4g}" for k, v in logs.items()), lr, rate, skipped)
        return due

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

