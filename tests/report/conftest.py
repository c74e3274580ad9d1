"""Synthetic runs in the stages' contract formats, so the report is tested without training.

`synthetic_run` writes, under a temporary results/<profile>/ folder, what the other stages write:
per-utterance metric CSVs + backend JSONs for every system and reference, curves.csv per
experiment, a residual-correlation table, a VQScore datasize.csv, a test meta.tsv with audio,
and enhanced audio — with numbers chosen so every paper claim holds (or, with `flip=True`,
the target claims fail).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from use_repro.audio.io import write_audio
from use_repro.report import layout
from use_repro.report.scores import METRICS

EXPERIMENTS = {
    "shifted_nofilter": {"stage": "regression", "target": "shifted", "filter": "vq050", "steps": 40},
    "shifted": {"stage": "regression", "target": "shifted", "filter": "vq065", "steps": 40, "test": True,
                "label": "Shifted anechoic"},
    "shifted_high": {"stage": "regression", "target": "shifted", "filter": "vq072", "steps": 40},
    "anechoic": {"stage": "regression", "target": "anechoic", "filter": "vq065", "steps": 40},
    "early": {"stage": "regression", "target": "early", "filter": "vq065", "steps": 40, "test": True,
              "label": "Early reflected"},
    "early25ms": {"stage": "regression", "target": "early25ms", "filter": "vq065", "steps": 40},
    "early_gan": {"stage": "gan", "target": "early", "filter": "vq065", "init": "early", "steps": 20,
                  "test": True, "label": "Early reflected +GAN"},
    "shifted_gan": {"stage": "gan", "target": "shifted", "filter": "vq065", "init": "shifted", "steps": 20,
                    "test": True, "unseen": True, "label": "Shifted anechoic +GAN"},
    "shifted_finetune": {"stage": "finetune", "target": "shifted", "filter": "vq065", "init": "shifted",
                         "steps": 20},
}
REPORT = {"fig3a": ["shifted_nofilter", "shifted", "shifted_high"],
          "fig3b": ["anechoic", "early", "early25ms", "shifted"]}

# Per-system means (a little spread is added per utterance).
BASE = {"DNSMOS": 2.0, "NISQA": 2.0, "UTMOS": 1.6, "PESQ": 1.4, "ESTOI": 0.6, "SDR": 3.0, "MCD": 8.0,
        "LSD": 5.5, "SBERT": 0.75, "LPS": 0.6, "SpkSim": 0.6, "CAcc": 80.0}
GAIN = {"early": 0.3, "early_gan": 0.35, "shifted": 0.5, "shifted_gan": 0.55}


def _means(system: str, flip: bool) -> dict[str, float]:
    g = GAIN.get(system, 0.0)
    if flip and system.startswith(("shifted", "early")):
        g = GAIN["early" if system.startswith("shifted") else "shifted"] + (0.05 if system.endswith("gan") else 0)
    out = {}
    for m, b in BASE.items():
        out[m] = b - g * b * 0.5 if m in ("MCD", "LSD") else b * (1 + g)
    if system.endswith("_gan"):  # GAN: NISQA up, PESQ down a little
        out["NISQA"] += 0.3
        out["PESQ"] -= 0.02
    return out


def write_eval(path: Path, system: str, ids: list[str], flip=False, seed=0):
    """A metric CSV + JSON as `use-repro evaluate` writes them: NISQA and UTMOS n/a (no weights),
    DistillMOS in its own column, SBERT from a non-paper backend."""
    rng = np.random.default_rng(seed)
    mu = _means(system, flip)
    df = pd.DataFrame({"id": ids, "fs": 16000, "seconds": 1.0})
    for m in METRICS:
        df[m] = mu[m] + 0.01 * rng.standard_normal(len(ids))
    df["DistillMOS"] = mu["UTMOS"] + 0.2 + 0.01 * rng.standard_normal(len(ids))
    df["NISQA"] = np.nan
    df["UTMOS"] = np.nan
    df["error"] = ""
    df["na"] = ""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    backends = {m: {"backend": "paper-backend", "version": "1", "paper_backend": True} for m in METRICS}
    backends["SBERT"] = {"backend": "whisper-tiny encoder", "version": "1.0", "paper_backend": False}
    backends["DistillMOS"] = {"backend": "distillmos", "version": "0.9", "paper_backend": False}
    backends["NISQA"] = {"backend": "n/a", "reason": "provide weights/nisqa/nisqa.tar", "paper_backend": False}
    backends["UTMOS"] = {"backend": "n/a", "reason": "provide weights/utmos/utmos22_strong_step7459_v1.pt",
                         "paper_backend": False}
    path.with_suffix(".json").write_text(json.dumps({"backends": backends, "averages": {}}))


VALID_UTTS = [f"v{i}" for i in range(8)]


def write_curves(path: Path, final: float, start: float, steps=(0, 10, 20, 30, 40), extra=None, seed=0):
    """curves.csv and, beside it, valid_scores.csv: each utterance's value is the curve's plus an
    offset of its own (shared by every run, so runs are paired) and a little noise of the run's."""
    rows = []
    for i, s in enumerate(steps):
        frac = i / (len(steps) - 1)
        rows.append((s, "DistillMOS", start + (final - start) * frac))
        rows.append((s, "PESQ", 1.5 + frac * (final - 1.5)))
        for k, v in (extra or {}).items():
            rows.append((s, k, v(frac)))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["step", "metric", "value"]).to_csv(path, index=False)
    rng = np.random.default_rng(seed)
    offsets = np.linspace(-0.2, 0.2, len(VALID_UTTS))
    per_utt = [(s, u, m, v + o + 0.005 * rng.standard_normal())
               for s, m, v in rows for u, o in zip(VALID_UTTS, offsets)]
    pd.DataFrame(per_utt, columns=["step", "utt", "metric", "value"]).to_csv(
        path.with_name("valid_scores.csv"), index=False)


def tone(fs, seconds=1.0, f0=220.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def make_run(root: Path, flip=False, seed_twin=False) -> dict:
    """`seed_twin`: add `shifted_seed1`, `shifted` with another seed (listed in Figure 3(b), as
    the small profile lists it), whose curve ends 0.1 lower."""
    profile = "synthetic"
    results = root / "results" / profile
    experiments, report = dict(EXPERIMENTS), dict(REPORT)
    if seed_twin:
        experiments["shifted_seed1"] = {**EXPERIMENTS["shifted"], "test": False, "seed": 1,
                                        "label": "Shifted anechoic (seed 1)"}
        report["fig3b"] = REPORT["fig3b"] + ["shifted_seed1"]
    cfg = {"profile": profile, "results_root": str(root / "results"), "figures_root": str(root / "figures"),
           "experiments": experiments, "report": report}
    cfg_path = root / "synthetic.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    # test set: 6 utterances at 48k, 44.1k and 16k; reverb, bandwidth limitation, noise
    meta_rows, ids = [], []
    specs = [(48000, "none", "none", 5.0), (48000, "rir1", "none", 15.0), (44100, "none",
             "bandwidth_limitation-kaiser_fast->8000", 10.0), (16000, "rir2", "none", 12.0),
             (16000, "none", "none", -3.0), (44100, "none", "none", 2.0)]
    for i, (fs, rir, aug, snr) in enumerate(specs):
        uid = f"utt{i}"
        ids.append(uid)
        noisy = root / "sim" / "noisy" / f"{uid}.flac"
        x = tone(fs, seed=i)
        if snr < 0:  # strong noise at 0.1-0.4 s (Figure 6's green box)
            a, b = int(0.1 * fs), int(0.4 * fs)
            x[a:b] += 0.1 * np.random.default_rng(i).standard_normal(b - a).astype(np.float32)
        write_audio(noisy, x, fs)
        row = {"id": uid, "noisy_path": str(noisy), "speech_uid": f"s{i}", "speech_sid": "spk",
               "clean_path": str(noisy), "noise_uid": "n", "snr_dB": str(snr), "rir_uid": rir,
               "augmentation": aug, "fs": str(fs), "length": str(fs), "text": "hello"}
        from use_repro.data.targets import target_column

        for tgt in ("early", "shifted", "anechoic"):
            p = root / "sim" / tgt / "0" / f"{uid}.flac"
            write_audio(p, tone(fs, seed=i + 10), fs)
            row[target_column(tgt)] = str(p)
        meta_rows.append(row)
        for exp in EXPERIMENTS:
            if EXPERIMENTS[exp].get("test"):
                x = tone(fs, seed=i + 20)
                if exp.endswith("_gan"):  # the GAN's correction: a noise burst at 0.5-0.8 s
                    a, b = int(0.5 * fs), int(0.8 * fs)
                    x[a:b] += 0.05 * np.random.default_rng(i).standard_normal(b - a).astype(np.float32)
                write_audio(layout.enhanced(results, exp) / "0" / f"{uid}.flac", x, fs)
    from use_repro.data.manifest import write_meta

    meta = root / "sim" / "test" / "meta.tsv"
    write_meta(meta, meta_rows)
    for system in ["noisy"] + [e for e in EXPERIMENTS if EXPERIMENTS[e].get("test")]:
        for k, ref in enumerate(layout.REFERENCES):
            write_eval(layout.eval_csv(results, system, "test", ref), system, ids, flip, seed=k)
    # held-out languages
    un_ids = [f"it{i}" for i in range(3)] + [f"ru{i}" for i in range(3)]
    lang = root / "corpus" / "unseen" / "utt2lang"  # the report reads it through --unseen-lang
    lang.parent.mkdir(parents=True, exist_ok=True)
    lang.write_text("".join(f"{u} {u[:2]}\n" for u in un_ids))
    write_eval(layout.eval_csv(results, "original", "unseen", None), "noisy", un_ids)
    write_eval(layout.eval_csv(results, "shifted_gan", "unseen", None), "shifted_gan", un_ids)
    # curves
    finals = {"shifted_nofilter": 2.0, "shifted": 2.4, "shifted_high": 2.2, "anechoic": 1.5,
              "early": 2.0, "early25ms": 2.2}
    if seed_twin:
        finals["shifted_seed1"] = 2.3
    starts = {"shifted_high": 1.9}
    for e, f in finals.items():
        if flip and e in ("shifted", "early"):
            f = {"shifted": 2.0, "early": 2.4}[e]
        write_curves(layout.curves(results, e), f, starts.get(e, 1.2), seed=len(e))
    losses = {"val_magnitude": lambda fr: 1 - 0.5 * fr, "val_phase": lambda fr: 2 - fr, "val_time": lambda fr: 0.5 - 0.2 * fr}
    for e, scale in (("shifted_gan", 1.0), ("shifted_finetune", 1.3), ("early_gan", 1.0)):
        write_curves(layout.curves(results, e), 2.5 / scale, 2.3, (0, 5, 10, 15, 20),
                     {k: (lambda fr, f=f, s=scale: f(fr) * s) for k, f in losses.items()})
    rc = layout.residual_correlation(results, "shifted_gan")
    rc.write_text(json.dumps({"mean_correlation": 0.75, "utterances": len(ids),
                              "per_utterance": dict(zip(ids, np.linspace(0.6, 0.9, len(ids)).tolist()))}))
    ds = root / "vqscore" / "datasize.csv"
    ds.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"name": ["vq050", "vq065", "vq072"], "mode": "keep", "threshold": [0.1, 0.4, 0.6],
                  "keep": [1.0, 0.995, 0.25], "utterances": [400, 398, 100], "hours": [1.0, 0.995, 0.25],
                  "hours_fraction": [1.0, 0.995, 0.25]}).to_csv(ds, index=False)
    return {"root": root, "results": results, "cfg_path": cfg_path, "meta": meta, "unseen_lang": lang,
            "datasize": ds, "figures": root / "figures" / profile, "profile": profile}


@pytest.fixture
def synthetic_run(tmp_path):
    return make_run(tmp_path)


@pytest.fixture
def seeded_run(tmp_path):
    return make_run(tmp_path, seed_twin=True)


@pytest.fixture
def flipped_run(tmp_path):
    return make_run(tmp_path, flip=True)
