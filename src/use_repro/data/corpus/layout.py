"""Where the corpus stage writes what (the contract later stages read).

``<out>/`` (``results/<profile>/corpus`` in the DAG):

- ``speech_{train,validation,test}.scp``, ``noise_{split}.scp``, ``rir_{split}.scp``,
  ``wind_noise_{split}.scp``: URGENT ``uid fs path`` lists; paths as the stage was given `--out`
  (relative to the working directory in the DAG). Wind uids start with ``wind_noise_``, the
  prefix the official simulation uses to tell wind rows.
- ``utt2spk``, ``utt2lang``, ``text``: side files over every speech uid of all three splits
  (``text`` only where the transcript is known).
- ``speech_info.tsv``: uid, split, source, origin, spk, lang, fs, native_fs, duration_s, dirty.
  `native_fs` differs from `fs` only for the TTS utterances stored at another rate and for the
  share of test utterances stored at the rates the held-out recordings lack
  (`corpus.test_resample_share`). Sources `tts` and `flite` (and origin `tts` in the crowd
  share) are synthetic speech.
- ``noise_info.tsv``: uid, split, category, type, source, fs, duration_s.
- ``rir_info.tsv``: uid, split, room, fs, rt60_s (measured), rt60_target_s, delay_ms, room_x/y/z,
  src_x/y/z, mic_x/y/z.
- ``wind_info.tsv``: uid, split, fs, duration_s, gustiness, mean_speed.
- ``crowd_dirty.tsv``: ground truth of the deliberately dirty share (see `crowd.py`).
- ``sources.tsv``: every source and package, `ok` or `missing` with the reason.
- ``summary.csv``: hours per source, language, rate; speakers; noise, RIR and wind counts.
- ``audio/{speech,noise,rir,wind,crowd_clean,babble_src}/...``: FLAC files.
"""
from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "validation", "test")
BANKS = ("speech", "noise", "rir", "wind_noise")
SIDE_FILES = ("utt2spk", "utt2lang", "text")
INFO_FILES = ("speech_info.tsv", "noise_info.tsv", "rir_info.tsv", "wind_info.tsv", "crowd_dirty.tsv",
              "sources.tsv")

SPEECH_INFO_COLUMNS = ("uid", "split", "source", "origin", "spk", "lang", "fs", "native_fs", "duration_s", "dirty")
NOISE_INFO_COLUMNS = ("uid", "split", "category", "type", "source", "fs", "duration_s")
RIR_INFO_COLUMNS = ("uid", "split", "room", "fs", "rt60_s", "rt60_target_s", "delay_ms", "room_x", "room_y",
                    "room_z", "src_x", "src_y", "src_z", "mic_x", "mic_y", "mic_z")
WIND_INFO_COLUMNS = ("uid", "split", "fs", "duration_s", "gustiness", "mean_speed")


def scp_name(bank: str, split: str) -> str:
    return f"{bank}_{split}.scp"


def manifest_files() -> list[str]:
    """Every manifest file name the stage writes (what Snakemake declares as outputs)."""
    return ([scp_name(b, s) for b in BANKS for s in SPLITS] + list(SIDE_FILES) + list(INFO_FILES)
            + ["summary.csv"])


def path(out: str | Path, name: str) -> Path:
    return Path(out) / name
