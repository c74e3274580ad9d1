"""Lossy codec round trip in memory with libsndfile (no ffmpeg subprocess).

The challenge encodes with torchaudio's ffmpeg ``AudioEffector(format, encoder,
CodecConfig(qscale))`` and keeps the first T decoded samples (zero-padding if shorter).
libsndfile (through soundfile) encodes MP3 (LAME) and Ogg Vorbis/Opus in-process; its knob
is a "compression level" in [0, 1], which we map from the challenge's qscale:

- ``mp3``: ffmpeg passes qscale to LAME as the VBR quality (0 best .. 9 worst); libsndfile
  sets VBR quality ``10 * level``, so level = qscale / 10 (VBR mode).
- ``ogg``/``vorbis``: ffmpeg's qscale q is Vorbis quality q / 10; libsndfile uses quality
  ``1 - level`` clamped to [0, 1], so level = 1 - q / 10 (q = -1 becomes quality 0, the
  lowest libsndfile allows, where ffmpeg would use -0.1).
- ``ogg``/``opus``: ffmpeg's Opus encoders have no quality scale (qscale does not set the
  bitrate there); we use the Vorbis mapping so that qscale still orders quality (libsndfile
  maps the level linearly onto the Opus bitrate, about 260 kbit/s at 0 down to 8 kbit/s
  at 1). Opus only runs at 8/12/16/24/48 kHz: other rates are resampled (soxr HQ) to the
  next supported rate and back.
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
FORMATS = {("mp3", None): ("MP3", "MPEG_LAYER_III"), ("ogg", "vorbis"): ("OGG", "VORBIS"),
           ("ogg", "opus"): ("OGG", "OPUS")}


class CodecError(ValueError):
    """An unknown codec/encoder or a failure inside libsndfile."""


def compression_level(fmt: str, encoder: str | None, qscale: int | float | None) -> float:
    """libsndfile compression level for the challenge's (format, encoder, qscale)."""
    if qscale is None:
        return 0.5
    q = float(qscale)
    if fmt == "mp3":
        return float(np.clip(q / 10.0, 0.0, 0.99))  # LAME rejects 1.0
    return float(np.clip(1.0 - q / 10.0, 0.0, 1.0))


def apply_codec(x: np.ndarray, fs: int, fmt: str, encoder: str | None = None,
                qscale: int | float | None = None) -> np.ndarray:
    """Encode and decode `x` ([T] float) at `fs`; [T] float64 out, aligned and length-fixed."""
    encoder = None if encoder in (None, "None", "none", "") else encoder
    key = (fmt, encoder)
    if key not in FORMATS:
        raise CodecError(f"unknown codec format={fmt} encoder={encoder}; known: "
                         + ", ".join(f"{f}/{e}" for f, e in FORMATS))
    sf_format, subtype = FORMATS[key]
    level = compression_level(fmt, encoder, qscale)
    n = x.shape[-1]
    work, work_fs = np.asarray(x, dtype=np.float64), int(fs)
    if encoder == "opus" and work_fs not in OPUS_RATES:
        import soxr

        work_fs = min(r for r in OPUS_RATES if r >= fs) if fs < 48000 else 48000
        work = soxr.resample(work, fs, work_fs, quality="HQ")
    # Encoders clip at full scale; the mixture can exceed it before the final 0.9/peak
    # scaling, so encode at a safe level and undo the gain after decoding.
    peak = float(np.max(np.abs(work))) if work.size else 0.0
    gain = 0.5 / peak if peak > 0.5 else 1.0
    buf = io.BytesIO()
    kwargs = {"compression_level": level}
    if sf_format == "MP3":
        kwargs["bitrate_mode"] = "VARIABLE"
    try:
        sf.write(buf, (work * gain).astype(np.float32), work_fs, format=sf_format, subtype=subtype, **kwargs)
        buf.seek(0)
        y, fs_dec = sf.read(buf, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise CodecError(f"codec {fmt}/{encoder} qscale={qscale} at {fs} Hz failed: {e}") from None
    y = y[:, 0] / gain
    if fs_dec != work_fs:
        import soxr

        y = soxr.resample(y, fs_dec, work_fs, quality="HQ")
    if work_fs != fs:
        import soxr

        y = soxr.resample(y, work_fs, fs, quality="HQ")
    if y.shape[0] >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - y.shape[0])])
