"""Real recorded speech and sound effects from Debian packages.

Packages are fetched with `apt-get download` (no root needed) and unpacked with `dpkg-deb -x`
into ``<cache_dir>/debian/<package>/root``; a ``.complete`` marker makes the cache reusable, so a
rerun or a test never fetches twice. A package that cannot be had is reported with the exact
reason and the build goes on with the rest.

What each package gives (all rates native; the build may store a labelled share of the test
utterances at another rate, see `build.assign_test_rates`):

| package | material | speaker(s) | lang | rate | role |
|---|---|---|---|---|---|
| asterisk-core-sounds-{en,es}-wav | IVR prompts, transcripts in asterisk-core-sounds-{en,es} | Allison (one person in both languages) | en, es | 8 kHz | train / validation |
| asterisk-core-sounds-fr-wav | prompts + transcripts | June | fr | 8 kHz | train / validation |
| asterisk-core-sounds-it-wav | prompts + transcripts | Carlo | it | 8 kHz | test only (unseen language) |
| asterisk-core-sounds-ru-wav | prompts + transcripts | IvrvoiceRU | ru | 8 kHz | test only (unseen language) |
| codec2-examples | clean reference sentences (radio-channel and codec-processed files left out) | one per file | en | 8/16 kHz | train |
| pocketsphinx-testdata | LibriVox excerpts, card names, digits, commands, with transcripts | 5 | en | 16 kHz | test |
| alsa-utils | channel names ("Front Left", ...) | 1 | en | 48 kHz | test |
| ktuberling-data | object names spoken by one volunteer per language, joined into word lists of one speaker and rate (transcripts for en, from the sound names) | 1 per language | en, it, ru | 8 / 44.1 kHz | test |
| asterisk-prompt-fr-armelle, asterisk-prompt-es-co | GSM prompts | Armelle, a Colombian speaker | fr, es | 8 kHz | babble noise (train) |
| asterisk-prompt-it-menardi-wav | prompts | Menardi | it | 8 kHz | babble noise (test) |
| sound-theme-freedesktop, alsa-utils Noise.wav | desktop event sounds, a noise burst | - | - | 8-48 kHz | noise (test types) |
| flite, libflite1, libasound2 | the flite synthesiser and its CMU voices (see `flite.py`) | awb, rms, slt, kal16 | en | 16 kHz | test (synthetic) |

Searched and not usable (2025-05 bookworm main): gcompris-qt-data (voices are downloaded at run
time, not packaged), fillets-ng-data (effects only; dialogue not in English), linphone-common
and tuxtype-data (a few words, mostly effects), mbrola voices (non-free, not in `main`).
"""
from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

AST = "usr/share/asterisk/sounds"
PS = "usr/share/pocketsphinx/test/data"
C2 = "usr/share/codec2"


@dataclass(frozen=True)
class Item:
    """One real recording. `fmt` is None for self-describing files, else (subtype, fs) of a RAW file.
    With `parts`, the recording is those files joined by `JOIN_PAUSE_S` of silence."""

    uid: str
    path: str
    fs: int
    text: str | None = None
    fmt: tuple[str, int] | None = None
    parts: tuple[str, ...] | None = None  # several files of one speaker joined (`path` is the first)


@dataclass
class Group:
    """Recordings of one speaker in one language from one package, with its role in the corpus.

    role: `trainval` (train and validation), `test`, `babble_train`, `babble_test`.
    """

    name: str
    source: str
    spk: str
    lang: str
    role: str
    items: list[Item] = field(default_factory=list)
    pool: list[tuple[Item, float]] = field(default_factory=list)  # (item, seconds) the build may use


# package -> packages whose files complete it (transcripts live in the base package)
SPEECH_PACKAGES = [
    "asterisk-core-sounds-en-wav", "asterisk-core-sounds-en",
    "asterisk-core-sounds-es-wav", "asterisk-core-sounds-es",
    "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-fr",
    "asterisk-core-sounds-it-wav", "asterisk-core-sounds-it",
    "asterisk-core-sounds-ru-wav", "asterisk-core-sounds-ru",
    "codec2-examples", "pocketsphinx-testdata", "alsa-utils",
    "asterisk-prompt-fr-armelle", "asterisk-prompt-es-co", "asterisk-prompt-it-menardi-wav",
    "ktuberling-data",
]
NOISE_PACKAGES = ["sound-theme-freedesktop", "alsa-utils"]
FLITE_PACKAGES = ["flite", "libflite1", "libasound2"]
ALL_PACKAGES = list(dict.fromkeys(SPEECH_PACKAGES + NOISE_PACKAGES + FLITE_PACKAGES))
KT = "usr/share/ktuberling/sounds"
JOIN_PAUSE_S = 0.3
# ktuberling languages used: English (more held-out English test speech) and the default held-out
# languages; es/fr (seen languages, new speakers) would take test minutes from those, and the
# other languages would be unseen languages the config does not hold out.
KT_LANGS = ("en", "it", "ru")
# ktuberling's English sound names that are not the spoken words as written
_KT_EN_WORDS = {"palmtree": "palm tree", "fallingstar": "falling star", "moonwalker": "moon walker",
                "sphynx": "sphinx", "broccolli": "broccoli", "ufo": "UFO"}

# (wav package, base package with transcripts, voice folder, speaker id, language, role)
_ASTERISK = [
    ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en", "en_US_f_Allison", "allison", "en", "trainval"),
    ("asterisk-core-sounds-es-wav", "asterisk-core-sounds-es", "es_MX_f_Allison", "allison", "es", "trainval"),
    ("asterisk-core-sounds-fr-wav", "asterisk-core-sounds-fr", "fr_CA_f_June", "june", "fr", "trainval"),
    ("asterisk-core-sounds-it-wav", "asterisk-core-sounds-it", "it_IT_m_Carlo", "carlo", "it", "test"),
    ("asterisk-core-sounds-ru-wav", "asterisk-core-sounds-ru", "ru_RU_f_IvrvoiceRU", "ivrvoice", "ru", "test"),
]
# codec2 reference sentences judged clean (>= 30 dB between loud and quiet frames); the radio
# recordings (ve9qrp, vk5qi, vk2tpm, g3plx, david4), mmt1 (noisy) and the 2400 bit/s decodes are left out.
_CODEC2 = [("raw/hts1.raw", 8000), ("raw/hts2.raw", 8000), ("wav/big_dog.wav", None), ("wav/cross.wav", None),
           ("wav/morig.wav", None), ("wav/forig.wav", None), ("raw/kristoff.raw", 8000),
           ("raw/cq_ref.raw", 8000), ("raw/speech_orig_16k.wav", None)]


class FetchError(RuntimeError):
    pass


def fetch_packages(packages: list[str], cache_dir: str | os.PathLike, offline: bool = False,
                   timeout: float = 600.0) -> tuple[dict[str, Path], dict[str, str]]:
    """Make each package's unpacked tree available under the cache.

    Returns ({package: root folder}, {package: why it is missing}). With `offline`, only what
    the cache already holds is used.
    """
    base = Path(cache_dir) / "debian"
    roots: dict[str, Path] = {}
    missing: dict[str, str] = {}
    todo = []
    for pkg in packages:
        root = base / pkg / "root"
        if (base / pkg / ".complete").exists():
            roots[pkg] = root
        else:
            todo.append(pkg)
    if not todo:
        return roots, missing
    if offline:
        for pkg in todo:
            missing[pkg] = "not in the cache and downloads are disabled (corpus.offline)"
        return roots, missing
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        why = "no apt-get/dpkg-deb on this machine (not a Debian-based system)"
        for pkg in todo:
            missing[pkg] = why
        return roots, missing
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix=".download.") as tmp:
        debs = _download_all(todo, Path(tmp), timeout)
        for pkg in todo:
            try:
                # one apt-get call per package when the joint call failed: one unknown package
                # must not sink the others
                deb = debs.get(pkg) or _download(pkg, Path(tmp), timeout)
                _unpack(deb, base / pkg, timeout)
                roots[pkg] = base / pkg / "root"
            except FetchError as e:
                missing[pkg] = str(e)
                log.warning("debian: %s: %s", pkg, e)
    return roots, missing


def _download_all(pkgs: list[str], where: Path, timeout: float) -> dict[str, Path]:
    """Try all packages in one apt-get call (much faster); {} when any of them fails."""
    try:
        r = subprocess.run(["apt-get", "download", "-q", *pkgs], cwd=where, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}
    if r.returncode != 0:
        return {}
    found = {}
    for deb in where.glob("*.deb"):
        name = deb.name.split("_", 1)[0]
        if name in pkgs:
            found[name] = deb
    return found


def _download(pkg: str, where: Path, timeout: float) -> Path:
    before = set(where.glob("*.deb"))
    try:
        r = subprocess.run(["apt-get", "download", "-q", pkg], cwd=where, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FetchError(f"apt-get download timed out after {timeout:.0f} s") from None
    new = sorted(set(where.glob("*.deb")) - before)
    if r.returncode != 0 or not new:
        err = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.startswith(("E:", "Err"))]
        msg = err[0] if err else (r.stderr.strip().splitlines() or ["no .deb written"])[-1]
        hint = " (run 'apt-get update' once if the package lists are empty)" if "Unable to locate" in msg else ""
        raise FetchError(f"apt-get download failed: {msg}{hint}")
    return new[0]


def _unpack(deb: Path, dest: Path, timeout: float) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    r = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest / "root")], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise FetchError(f"dpkg-deb -x failed: {r.stderr.strip()}")
    (dest / ".complete").write_text(deb.name + "\n")


# ---------------------------------------------------------------------------------------------
# Catalogue: what the unpacked trees hold


def read_item(item: Item) -> tuple[np.ndarray, int]:
    """Samples (float32 [T], mono) and rate of one recording."""
    if item.parts:
        chunks = []
        for p in item.parts:
            x, fs = read_item(Item(item.uid, p, item.fs))
            if fs != item.fs:
                raise ValueError(f"{p}: {fs} Hz, expected {item.fs} Hz like the other parts of {item.uid}")
            chunks += [x, np.zeros(int(round(JOIN_PAUSE_S * fs)), np.float32)]
        return np.concatenate(chunks[:-1]).astype(np.float32), int(item.fs)
    if item.fmt is None:
        x, fs = sf.read(item.path, dtype="float32", always_2d=True)
    else:
        subtype, fs = item.fmt
        x, fs = sf.read(item.path, dtype="float32", always_2d=True, format="RAW", subtype=subtype,
                        samplerate=fs, channels=1)
    return x.mean(axis=1), int(fs)


def _asterisk_transcripts(base_root: Path | None, lang: str) -> dict[str, str]:
    if base_root is None:
        return {}
    f = next(iter(base_root.glob(f"usr/share/doc/*/core-sounds-{lang}.txt.gz")), None)
    if f is None:
        return {}
    out = {}
    with gzip.open(f, "rt", encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            key, text = line.split(":", 1)
            text = re.sub(r"\[[^\]]*\]", " ", text)  # "[this is a beep]", "dot [.]": not speech
            text = " ".join(text.split())
            out[key.strip()] = text
    return out


def _clean_uid(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")


def speech_groups(roots: dict[str, Path], kt_train_langs: tuple[str, ...] = ()) -> list[Group]:
    """Every usable group of real speech found in the unpacked package trees.

    kt_train_langs: ktuberling languages whose volunteer is added to train/validation (wide-band
    voices; `corpus.ktuberling_train_languages`). They must not be the test languages `KT_LANGS`."""
    groups: list[Group] = []
    for wav_pkg, base_pkg, folder, spk, lang, role in _ASTERISK:
        if wav_pkg not in roots:
            continue
        texts = _asterisk_transcripts(roots.get(base_pkg), lang)
        voice = roots[wav_pkg] / AST / folder
        g = Group(f"asterisk-{lang}", "asterisk", spk, lang, role)
        for p in sorted(voice.rglob("*.wav")):
            key = p.relative_to(voice).with_suffix("").as_posix()
            if key.startswith("silence/"):
                continue
            text = texts.get(key)
            if texts and not text:  # the package says it is a tone, or it is not a listed prompt
                continue
            g.items.append(Item(f"ast_{lang}_{spk}_{_clean_uid(key)}", str(p), 8000, text))
        groups.append(g)
    if "codec2-examples" in roots:
        c2 = roots["codec2-examples"] / C2
        for rel, raw_fs in _CODEC2:
            p = c2 / rel
            if not p.exists():
                continue
            stem = p.stem.replace("_16k", "")
            fmt = ("PCM_16", raw_fs) if raw_fs else None
            fs = raw_fs or sf.info(str(p)).samplerate
            g = Group(f"codec2-{stem}", "codec2", f"c2_{_clean_uid(stem)}", "en", "trainval",
                      [Item(f"c2_{_clean_uid(stem)}", str(p), fs, None, fmt)])
            groups.append(g)
    if "pocketsphinx-testdata" in roots:
        groups += _pocketsphinx(roots["pocketsphinx-testdata"] / PS)
    if "alsa-utils" in roots:
        d = roots["alsa-utils"] / "usr/share/sounds/alsa"
        items = [Item(f"alsa_{p.stem.replace('_', '-')}", str(p), 48000, p.stem.replace("_", " ").capitalize())
                 for p in sorted(d.glob("*.wav")) if p.stem != "Noise"]
        if items:
            groups.append(Group("alsa", "alsa", "alsa", "en", "test", items))
    if "ktuberling-data" in roots:
        groups += _ktuberling(roots["ktuberling-data"] / KT)
        if kt_train_langs:
            _check_kt_train_langs(roots["ktuberling-data"] / KT, kt_train_langs)
            groups += _ktuberling(roots["ktuberling-data"] / KT, kt_train_langs, "trainval")
    babble = [("asterisk-prompt-fr-armelle", "armelle", "fr", "babble_train", "*.gsm"),
              ("asterisk-prompt-es-co", "es-co", "es", "babble_train", "*.gsm"),
              ("asterisk-prompt-it-menardi-wav", "menardi", "it", "babble_test", "*.wav")]
    for pkg, spk, lang, role, pat in babble:
        if pkg not in roots:
            continue
        files = sorted((roots[pkg] / AST).rglob(pat))
        fmt = ("GSM610", 8000) if pat == "*.gsm" else None
        items = [Item(f"babble_{spk}_{_clean_uid(p.relative_to(roots[pkg] / AST).with_suffix('').as_posix())}",
                      str(p), 8000, None, fmt) for p in files]
        if items:
            groups.append(Group(f"babble-{spk}", pkg, spk, lang, role, items))
    return groups


def _pocketsphinx(d: Path) -> list[Group]:
    groups = []
    trans = d / "librivox" / "transcription"
    if trans.exists():
        texts = _sphinx_transcripts(trans)
        items = [Item(f"ps_librivox_{p.stem.split('-')[-1]}", str(p), 16000, texts.get(p.stem))
                 for p in sorted((d / "librivox").glob("*.wav"))]
        groups.append(Group("ps-librivox", "pocketsphinx", "ps_librivox", "en", "test", items))
    trans = d / "cards" / "cards.transcription"
    if trans.exists():
        texts = _sphinx_transcripts(trans)
        items = [Item(f"ps_cards_{p.stem}", str(p), 16000, texts.get(p.stem))
                 for p in sorted((d / "cards").glob("*.wav"))]
        groups.append(Group("ps-cards", "pocketsphinx", "ps_cards", "en", "test", items))
    raw = [("goforward.raw", "ps_goforward", "go forward ten meters"),
           ("tidigits/dhd.2934z.raw", "ps_dhd", "two nine three four zero")]
    for rel, spk, text in raw:
        p = d / rel
        if p.exists():
            groups.append(Group(f"ps-{spk}", "pocketsphinx", spk, "en", "test",
                                [Item(spk, str(p), 16000, text, ("PCM_16", 16000))]))
    return groups


def _kt_word(lang: str, stem: str) -> str | None:
    """The English word(s) a ktuberling sound says, from its name ("egypt_palmtree" -> "palm tree")."""
    if lang != "en":
        return None  # other languages' names are ASCII-fied (fr) or English (ru): not transcripts
    word = stem.split("_", 1)[-1]
    return _KT_EN_WORDS.get(word, word.replace("-", " "))


def _check_kt_train_langs(d: Path, langs: tuple[str, ...]) -> None:
    """ValueError naming `corpus.ktuberling_train_languages` when one of `langs` is a ktuberling
    test speaker (`KT_LANGS`) or has no sounds folder under `d` (the error lists those there)."""
    overlap = sorted(set(langs) & set(KT_LANGS))
    if overlap:
        raise ValueError(f"corpus.ktuberling_train_languages: {overlap} are ktuberling's test "
                         f"speakers ({', '.join(KT_LANGS)}); choose other languages")
    missing = [lang for lang in langs if not (d / lang).is_dir()]
    if missing:
        have = sorted(p.name for p in d.iterdir() if p.is_dir() and "." not in p.name) if d.is_dir() else []
        raise ValueError(f"corpus.ktuberling_train_languages: no ktuberling sounds for {missing} in {d} "
                         f"(languages there: {', '.join(have)})")


def _ktuberling(d: Path, langs: tuple[str, ...] = KT_LANGS, role: str = "test",
                min_s: float = 3.0, max_words: int = 6) -> list[Group]:
    """One group of `role` per (language, rate): consecutive words of one speaker joined into word
    lists of at least `min_s` seconds (at most `max_words` words), so the utterances are not
    single words. The words are real recordings; only the pauses between them are added."""
    groups = []
    for lang in langs:
        files = sorted(p for p in (d / lang).glob("*") if p.suffix in (".ogg", ".wav", ".opus"))
        by_rate: dict[int, list[tuple[Path, float]]] = {}
        for p in files:
            try:
                info = sf.info(str(p))
            except RuntimeError as e:
                log.warning("debian: %s: unreadable, skipped (%s)", p, e)
                continue
            by_rate.setdefault(int(info.samplerate), []).append((p, float(info.duration)))
        for fs, words in sorted(by_rate.items()):
            items, cur, dur = [], [], 0.0
            for k, (p, d_s) in enumerate(words):
                cur.append(p)
                dur += d_s + (JOIN_PAUSE_S if len(cur) > 1 else 0.0)
                if dur >= min_s or len(cur) >= max_words or k == len(words) - 1:
                    texts = [_kt_word(lang, q.stem) for q in cur]
                    text = " ".join(texts) if all(texts) else None
                    items.append(Item(f"kt_{lang}_{fs // 1000}k{len(items):03d}", str(cur[0]), fs, text,
                                      None, tuple(str(q) for q in cur)))
                    cur, dur = [], 0.0
            if items:
                groups.append(Group(f"ktuberling-{lang}-{fs}", "ktuberling", f"kt_{lang}", lang, role, items))
    return groups


def _sphinx_transcripts(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"\s*(.*?)\s*\(([^)]+)\)\s*$", line)
        if m:
            text = re.sub(r"</?s>", " ", m.group(1))
            out[m.group(2)] = " ".join(text.split())
    return out


def noise_files(roots: dict[str, Path]) -> list[Item]:
    """Real sound effects usable as (test) noise: freedesktop event sounds and alsa's Noise.wav."""
    items = []
    if "sound-theme-freedesktop" in roots:
        for p in sorted(roots["sound-theme-freedesktop"].rglob("*.oga")):
            items.append(Item(f"sfx_{_clean_uid(p.stem)}", str(p), sf.info(str(p)).samplerate))
    if "alsa-utils" in roots:
        p = roots["alsa-utils"] / "usr/share/sounds/alsa/Noise.wav"
        if p.exists():
            items.append(Item("sfx_alsa-noise", str(p), 48000))
    return items
