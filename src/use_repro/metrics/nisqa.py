"""NISQA v2.0 (Mittag et al., 2021) as URGENT 2025 scores it: the official `nisqa.tar` run through
the official model code, with features computed exactly as the official `predict_file` path.

The model classes come from the `nisqa` distribution installed by the Makefile
(`pip install --no-deps nisqa==2.0.post2`: its pinned torch==2.2.1 is not needed at inference).
Which `nisqa` `import nisqa` finds depends on sys.path (a `nisqa/` folder in the working
directory, a clone of the NISQA repository, would win), so `official_lib` loads `NISQA_lib.py`
from the installed distribution's own file list, under a private module name, and reports the
file and its sha256; nothing here depends on what else is importable as `nisqa`.

Features, as `NISQA_lib.SpeechQualityDataset._load_spec` + `get_librosa_melspec` +
`segment_specs` with the checkpoint's arguments:

    x [T] at fs  --(only when the checkpoint's ms_sr is set: soxr HQ to ms_sr)-->  y [T']
    y --librosa mel, |STFT| (power 1), hann, n_fft ms_n_fft, hop int(sr*ms_hop_length),
        win int(sr*ms_win_length), centred reflect padding, ms_n_mels slaney bands 0..ms_fmax-->
    amplitude_to_db(ref 1, amin 1e-4, top_db 80)                       [n_mels, frames]
    --windows of ms_seg_length frames every ms_seg_hop_length, zero-padded to ms_max_segments-->
                                                                      [S, 1, n_mels, seg_length]

The official v2.0 checkpoint has `ms_sr: None`: the official code loads each file with
`librosa.load(sr=None)`, at its own rate, and never resamples (the mel filters and hop follow
the rate). So do we; forcing 48 kHz changes the prediction by up to 0.33 at 22.05 kHz.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import os
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from use_repro.fs import sha256_file

DIST = "nisqa"
# sha256 of the official NISQA v2.0 `weights/nisqa.tar` (github.com/gabrielmittag/NISQA,
# raw/master/weights/nisqa.tar). Only this file is the paper's (the challenge's) backend.
OFFICIAL_SHA256 = "7ec4cf937514dd3f8860b21e66fabd8ca87a168572675ef8d979c4c4ad2e805c"
_MODULE_NAME = "use_repro._official_nisqa_lib"


def official_lib_path() -> Path:
    """`NISQA_lib.py` of the installed `nisqa` distribution (by its RECORD, not by sys.path).

    Raises LookupError naming what is missing."""
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise LookupError(f"the `{DIST}` distribution is not installed "
                          f"(pip install --no-deps nisqa==2.0.post2)") from e
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith("nisqa/NISQA_lib.py"):
            p = Path(dist.locate_file(f)).resolve()
            if p.is_file():
                return p
            raise LookupError(f"{DIST} {dist.version}: its RECORD lists {f} but {p} is missing")
    raise LookupError(f"{DIST} {dist.version}: no nisqa/NISQA_lib.py among its installed files")


@lru_cache(maxsize=1)
def official_lib():
    """The official `NISQA_lib` module, loaded from `official_lib_path()` under a private name.

    It imports matplotlib.pyplot at module level; the Agg backend keeps that headless."""
    path = official_lib_path()
    os.environ.setdefault("MPLBACKEND", "Agg")
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception:
        sys.modules.pop(_MODULE_NAME, None)
        raise
    return mod


def describe_code() -> str:
    """`nisqa <version> (<file>, sha256 <12 hex>)`: which model code a run used."""
    path = official_lib_path()
    return f"{DIST} {importlib.metadata.version(DIST)} ({path.name} sha256 {sha256_file(path)[:12]})"


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict (`args`, `model_state_dict`); plain tensors and Python values only."""
    import torch

    return torch.load(str(path), map_location="cpu", weights_only=True)


class NISQA:
    """NISQA v2 single-ended predictor. `__call__(x [T] float, fs) -> {"NISQA": overall MOS}`.

    `checkpoint`: a NISQA `.tar` whose `args['model']` is NISQA or NISQA_DIM (the official
    `nisqa.tar` is NISQA_DIM: MOS, noisiness, discontinuity, colouration, loudness; the MOS is
    its first output, the one URGENT 2025 reports).
    """

    columns = ("NISQA",)

    def __init__(self, checkpoint: str | os.PathLike, threads: int | None = None):
        import torch

        self.torch = torch
        self.nl = official_lib()
        ck = load_checkpoint(checkpoint)
        for key in ("args", "model_state_dict"):
            if key not in ck:
                raise ValueError(f"{checkpoint}: not a NISQA checkpoint (no {key!r} key)")
        self.args = args = dict(ck["args"])
        classes = {"NISQA": self.nl.NISQA, "NISQA_DIM": self.nl.NISQA_DIM}
        if args.get("model") not in classes:
            raise ValueError(f"{checkpoint}: args['model'] is {args.get('model')!r}; only the "
                             f"single-ended NISQA and NISQA_DIM models are supported")
        cls = classes[args["model"]]
        # The official _loadModel passes exactly the constructor's arguments from `args`.
        names = set(inspect.signature(cls.__init__).parameters) - {"self"}
        missing = sorted(n for n in names if n not in args and
                         inspect.signature(cls.__init__).parameters[n].default is inspect.Parameter.empty)
        if missing:
            raise ValueError(f"{checkpoint}: args lacks {', '.join(missing)} needed by {args['model']}")
        self.model = cls(**{k: v for k, v in args.items() if k in names})
        self.model.load_state_dict(ck["model_state_dict"], strict=True)
        self.model.eval()

    def feature_rate(self, fs: int) -> int:
        """The rate features are computed at: the checkpoint's ms_sr, or (None) the file's own."""
        sr = self.args.get("ms_sr")
        return int(fs) if sr is None else int(sr)

    def features(self, x: np.ndarray, fs: int):
        """Segmented mel spectrogram: x [T] -> (segments [ms_max_segments, 1, n_mels, seg_len], n_wins)."""
        import librosa

        a = self.args
        y = np.asarray(x, dtype=np.float32).reshape(-1)
        sr = self.feature_rate(fs)
        if sr != int(fs):
            from use_repro.audio.resample import resample

            y = resample(y, int(fs), sr, quality="HQ")  # librosa.load's soxr_hq
        with warnings.catch_warnings():
            # Below 40 kHz the top mel bands (up to ms_fmax 20 kHz) lie above Nyquist and are
            # empty; the official code computes them the same way, so the warning is noise here.
            warnings.filterwarnings("ignore", message="Empty filters detected", category=UserWarning)
            spec = librosa.feature.melspectrogram(
                y=y, sr=sr, n_fft=a["ms_n_fft"], hop_length=int(sr * a["ms_hop_length"]),
                win_length=int(sr * a["ms_win_length"]), window="hann", center=True, pad_mode="reflect",
                power=1.0, n_mels=a["ms_n_mels"], fmin=0.0, fmax=a["ms_fmax"], htk=False, norm="slaney")
        spec = librosa.amplitude_to_db(spec, ref=1.0, amin=1e-4, top_db=80.0)
        segs, n_wins = self.nl.segment_specs("<array>", spec, a["ms_seg_length"], a["ms_seg_hop_length"],
                                             a.get("ms_max_segments"))
        return segs.float(), int(n_wins)

    def __call__(self, x: np.ndarray, fs: int) -> dict[str, float]:
        segs, n_wins = self.features(x, fs)
        with self.torch.inference_mode():
            y = self.model(segs[None], self.torch.tensor([n_wins]))
        return {"NISQA": float(y.reshape(-1)[0])}
