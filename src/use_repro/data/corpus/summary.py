"""What the corpus holds: hours per source, language and sampling rate, speakers per split, and
noise / RIR / wind counts; read back from the written info files, so it describes what is on disk.

`summary.csv` is one tidy table, one row per (kind, split, group, ...) with the columns
``kind split group lang fs native_fs count hours speakers note``:

- kind `speech`: group = source (tts, flite, asterisk, codec2, pocketsphinx, alsa, ktuberling,
  crowd); one row per (split, source, lang, fs, native_fs, synthetic or not). `note` says
  `synthetic` for TTS and flite speech (also inside the crowd share) and `resampled from N Hz`
  where `native_fs` != `fs` (TTS stored at another rate, the test share of `assign_test_rates`).
- kind `noise`: group = category/type, fs = rate; kind `rir`: group = room range, note = RT60 and
  delay ranges; kind `wind`: per rate.
- kind `source`: a source or package that is missing, with the reason in `note`.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from use_repro.fs import atomic_path

COLUMNS = ("kind", "split", "group", "lang", "fs", "native_fs", "count", "hours", "speakers", "note")
SYNTHETIC_ORIGINS = ("tts", "flite")


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def summarise(out: str | Path) -> list[dict]:
    out = Path(out)
    rows: list[dict] = []
    speech = _read(out / "speech_info.tsv")
    agg: dict[tuple, list] = defaultdict(lambda: [0, 0.0, set()])
    for r in speech:
        k = (r["split"], r["source"], r["lang"], int(r["fs"]), int(r["native_fs"]),
             r.get("origin") in SYNTHETIC_ORIGINS)
        a = agg[k]
        a[0] += 1
        a[1] += float(r["duration_s"])
        a[2].add(r["spk"])
    for (split, src, lang, fs, nfs, syn), (n, sec, spk) in sorted(agg.items()):
        note = "; ".join((["synthetic"] if syn else []) + ([f"resampled from {nfs} Hz"] if fs != nfs else []))
        rows.append(dict(kind="speech", split=split, group=src, lang=lang, fs=fs, native_fs=nfs, count=n,
                         hours=round(sec / 3600, 4), speakers=len(spk), note=note))
    nagg: dict[tuple, list] = defaultdict(lambda: [0, 0.0])
    for r in _read(out / "noise_info.tsv"):
        k = (r["split"], f"{r['category']}/{r['type']}", int(r["fs"]))
        nagg[k][0] += 1
        nagg[k][1] += float(r["duration_s"])
    for (split, grp, fs), (n, sec) in sorted(nagg.items()):
        rows.append(dict(kind="noise", split=split, group=grp, lang="", fs=fs, native_fs=fs, count=n,
                         hours=round(sec / 3600, 4), speakers="", note=""))
    rirs = _read(out / "rir_info.tsv")
    for split in ("train", "validation", "test"):
        sel = [r for r in rirs if r["split"] == split]
        if sel:
            rt = [float(r["rt60_s"]) for r in sel]
            dl = [float(r["delay_ms"]) for r in sel]
            rooms = {r["room"] for r in sel}
            rows.append(dict(kind="rir", split=split, group=f"{len(rooms)} rooms", lang="", fs=sel[0]["fs"],
                             native_fs=sel[0]["fs"], count=len(sel), hours="", speakers="",
                             note=f"rt60 {min(rt):.2f}-{max(rt):.2f} s; delay {min(dl):.1f}-{max(dl):.1f} ms"))
    wagg: dict[tuple, list] = defaultdict(lambda: [0, 0.0])
    for r in _read(out / "wind_info.tsv"):
        k = (r["split"], int(r["fs"]))
        wagg[k][0] += 1
        wagg[k][1] += float(r["duration_s"])
    for (split, fs), (n, sec) in sorted(wagg.items()):
        rows.append(dict(kind="wind", split=split, group="sc_model", lang="", fs=fs, native_fs=48000, count=n,
                         hours=round(sec / 3600, 4), speakers="", note="generated at 48 kHz, resampled"))
    for r in _read(out / "sources.tsv"):
        if r["status"] != "ok":
            rows.append(dict(kind="source", split="", group=r["source"], lang="", fs="", native_fs="", count="",
                             hours="", speakers="", note=f"{r['status']}: {r['detail']}"))
    return rows


def write(path: str | Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in COLUMNS})


def report(rows: list[dict], warnings: list[str] = ()) -> list[str]:
    """Human-readable lines for the log: hours per source / language / rate, speakers, bank counts."""
    sp = [r for r in rows if r["kind"] == "speech"]
    lines = ["corpus summary"]

    def table(title, key):
        acc: dict = defaultdict(lambda: defaultdict(float))
        for r in sp:
            acc[key(r)][r["split"]] += float(r["hours"])
        lines.append(f"  speech hours per {title}:   train  validation    test")
        for k in sorted(acc, key=str):
            v = acc[k]
            lines.append(f"    {str(k):<22} {v['train']:7.3f} {v['validation']:11.3f} {v['test']:7.3f}")

    table("source", lambda r: r["group"] + (" (synthetic)" if "synthetic" in r["note"] else ""))
    table("language", lambda r: r["lang"])
    table("rate (Hz)", lambda r: r["fs"] if r["fs"] == r["native_fs"] else f"{r['fs']} (from {r['native_fs']})")
    for split in ("train", "validation", "test"):
        n = sum(int(r["count"]) for r in sp if r["split"] == split)
        h = sum(float(r["hours"]) for r in sp if r["split"] == split)
        lines.append(f"  {split}: {n} utterances, {h:.3f} h")
    noise = [r for r in rows if r["kind"] == "noise"]
    for split in ("train", "validation", "test"):
        types = sorted({r["group"] for r in noise if r["split"] == split})
        n = sum(int(r["count"]) for r in noise if r["split"] == split)
        lines.append(f"  noise {split}: {n} clips, types {', '.join(types)}")
    for r in rows:
        if r["kind"] == "rir":
            lines.append(f"  rir {r['split']}: {r['count']} RIRs in {r['group']}, {r['note']}")
    wind_rows = [r for r in rows if r["kind"] == "wind"]
    for split in ("train", "validation", "test"):
        n = sum(int(r["count"]) for r in wind_rows if r["split"] == split)
        lines.append(f"  wind {split}: {n} clips at {sorted({int(r['fs']) for r in wind_rows if r['split'] == split})}")
    for r in rows:
        if r["kind"] == "source":
            lines.append(f"  MISSING {r['group']}: {r['note']}")
    for w in warnings:
        lines.append(f"  WARNING {w}")
    return lines
