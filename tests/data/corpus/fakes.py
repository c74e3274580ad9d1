"""A fake Debian package cache, laid out exactly like the unpacked packages, made of synthetic
audio: the corpus tests run the real catalogue and split code offline, in seconds."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import soundfile as sf

from use_repro.data.corpus import debian


# Stands in for the flite binary (same arguments, a 16 kHz harmonic signal whose pitch depends on
# the voice and whose length on the text and duration_stretch); standard library only.
FAKE_FLITE = """#!/usr/bin/env python3
import math, struct, sys, wave
a = sys.argv[1:]
if a == ["-lv"]:
    print("Voices available: kal awb_time kal16 awb rms slt ")
    sys.exit(0)
voice, text, out, stretch = "kal", "", None, 1.0
i = 0
while i < len(a):
    if a[i] == "-voice": voice = a[i + 1]; i += 2
    elif a[i] == "-t": text = a[i + 1]; i += 2
    elif a[i] == "-o": out = a[i + 1]; i += 2
    elif a[i] == "--setf":
        k, v = a[i + 1].split("="); stretch = float(v) if k == "duration_stretch" else stretch; i += 2
    else: i += 1
fs = 8000 if voice == "kal" else 16000
f0 = {"awb": 110.0, "rms": 100.0, "slt": 180.0, "kal16": 105.0}.get(voice, 120.0)
n = int(fs * 0.06 * len(text) * stretch)
y = [0.4 * math.sin(2 * math.pi * f0 * t / fs) * max(0.0, math.sin(2 * math.pi * 4 * t / fs)) for t in range(n)]
w = wave.open(out, "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(fs)
w.writeframes(b"".join(struct.pack("<h", int(32767 * v)) for v in y)); w.close()
"""


def voiced(fs: int, seconds: float, f0: float, seed: int) -> np.ndarray:
    """Speech-like test signal [T]: a harmonic tone with syllable-rate bursts and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    ph = 2 * np.pi * np.cumsum(f) / fs
    x = sum(0.3 / k * np.sin(k * ph) for k in range(1, 8) if f0 * k < fs / 2)
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return (x * env + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def _done(cache: Path, pkg: str) -> Path:
    root = cache / "debian" / pkg / "root"
    root.mkdir(parents=True, exist_ok=True)
    (cache / "debian" / pkg / ".complete").write_text("fake\n")
    return root


def make_fake_cache(cache: Path, n_prompts: int = 14) -> Path:
    """Populate `cache` with every package the corpus uses; returns `cache`."""
    seed = 0
    for wav_pkg, base_pkg, folder, _spk, lang, _ in debian._ASTERISK:
        root = _done(cache, wav_pkg)
        base = _done(cache, base_pkg)
        lines = [f"; Core Asterisk Sounds in {lang}", ""]
        for i in range(n_prompts):
            seed += 1
            name = f"prompt-{i:02d}"
            p = root / debian.AST / folder / f"{name}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, voiced(8000, 1.5 + (i % 4) * 0.5, 120 + 10 * i, seed), 8000, subtype="PCM_16")
            lines.append(f"{name}: {lang} prompt number {i}.")
        p = root / debian.AST / folder / "beep.wav"
        sf.write(p, voiced(8000, 1.2, 1000, 99), 8000, subtype="PCM_16")
        lines.append("beep: [this is a simple beep tone]")
        doc = base / f"usr/share/doc/{base_pkg}"
        doc.mkdir(parents=True, exist_ok=True)
        with gzip.open(doc / f"core-sounds-{lang}.txt.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    root = _done(cache, "codec2-examples")
    for rel, raw_fs in debian._CODEC2:
        p = root / debian.C2 / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        seed += 1
        fs = raw_fs or (16000 if "16k" in rel else 8000)
        x = voiced(fs, 2.5, 100 + seed, seed)
        if raw_fs:
            sf.write(p, x, fs, format="RAW", subtype="PCM_16")
        else:
            sf.write(p, x, fs, subtype="PCM_16")
    root = _done(cache, "pocketsphinx-testdata")
    d = root / debian.PS
    (d / "librivox").mkdir(parents=True)
    (d / "cards").mkdir(parents=True)
    (d / "tidigits").mkdir(parents=True)
    trans = []
    for i in range(4):
        stem = f"sense_and_sensibility_01_austen_64kb-0{870 + 10 * i}"
        sf.write(d / "librivox" / f"{stem}.wav", voiced(16000, 2.0, 150 + i, 200 + i), 16000, subtype="PCM_16")
        trans.append(f"<s> he was not an ill disposed young man {i} </s> ({stem})")
    (d / "librivox" / "transcription").write_text("\n".join(trans) + "\n")
    trans = []
    for i in range(1, 4):
        sf.write(d / "cards" / f"00{i}.wav", voiced(16000, 1.6, 180 + i, 300 + i), 16000, subtype="PCM_16")
        trans.append(f"<s> ten of clubs {i} </s> (00{i})")
    (d / "cards" / "cards.transcription").write_text("\n".join(trans) + "\n")
    sf.write(d / "goforward.raw", voiced(16000, 2.0, 170, 400), 16000, format="RAW", subtype="PCM_16")
    sf.write(d / "tidigits" / "dhd.2934z.raw", voiced(16000, 2.0, 190, 401), 16000, format="RAW", subtype="PCM_16")
    root = _done(cache, "alsa-utils")
    d = root / "usr/share/sounds/alsa"
    d.mkdir(parents=True)
    for i, name in enumerate(["Front_Center", "Front_Left", "Rear_Right"]):
        sf.write(d / f"{name}.wav", voiced(48000, 1.4, 140 + i, 500 + i), 48000, subtype="PCM_16")
    sf.write(d / "Noise.wav", (0.1 * np.random.default_rng(1).standard_normal(48000)).astype(np.float32), 48000,
             subtype="PCM_16")
    for pkg, ext, fmt in [("asterisk-prompt-fr-armelle", "gsm", "GSM610"), ("asterisk-prompt-es-co", "gsm", "GSM610"),
                          ("asterisk-prompt-it-menardi-wav", "wav", None)]:
        root = _done(cache, pkg)
        d = root / debian.AST / "xx"
        d.mkdir(parents=True)
        for i in range(6):
            x = voiced(8000, 1.5, 110 + 15 * i, 600 + i)
            if fmt:
                sf.write(d / f"p{i}.{ext}", x, 8000, format="RAW", subtype=fmt)
            else:
                sf.write(d / f"p{i}.{ext}", x, 8000, subtype="PCM_16")
    root = _done(cache, "ktuberling-data")
    d = root / debian.KT
    for lang, fs, ext, words in [("en", 44100, "ogg", ["ball", "egypt_palmtree", "hat", "nose", "moon_ufo", "tie"]),
                                 ("ru", 44100, "ogg", ["ball", "coat", "ear", "eye"]),
                                 ("it", 8000, "wav", ["bocca", "naso", "occhio"]),
                                 ("de", 44100, "ogg", ["ball", "hut"])]:  # de: a language the corpus leaves out
        (d / lang).mkdir(parents=True)
        for i, w in enumerate(words):
            seed += 1
            x = voiced(fs, 0.7 + 0.1 * (i % 3), 130 + 7 * i, seed)
            if ext == "ogg":
                sf.write(d / lang / f"{w}.ogg", np.stack([x, x], 1), fs, format="OGG", subtype="VORBIS")
            else:
                sf.write(d / lang / f"{w}.wav", x, fs, subtype="PCM_16")
    for pkg in debian.FLITE_PACKAGES:
        root = _done(cache, pkg)
    exe = _done(cache, "flite") / "usr/bin/flite"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text(FAKE_FLITE)
    exe.chmod(0o755)
    root = _done(cache, "sound-theme-freedesktop")
    d = root / "usr/share/sounds/freedesktop/stereo"
    d.mkdir(parents=True)
    for i, fs in enumerate([44100, 48000, 96000]):
        x = np.random.default_rng(i).standard_normal((fs // 2, 2)).astype(np.float32) * 0.1
        sf.write(d / f"event{i}.oga", x, fs, format="OGG", subtype="VORBIS")
    return cache
