"""Reading the metric stage's output: per-utterance CSV + JSON of backends, as the report needs it.

The evaluate stage writes one CSV row per utterance (one column per metric, an `error` column)
and a JSON beside it naming the backend of each column. The report knows the twelve metrics by
the names the paper prints (`METRICS`); `canonical` maps the metric stage's column names onto
them, so a renamed column is a one-line change here and nowhere else.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from use_repro.metrics import registry
from use_repro.metrics.registry import LOWER_IS_BETTER

# The metric names are the metric stage's (metrics/registry.py), one list for the stage that
# writes the columns and the report that reads them.
# The paper's twelve leaderboard metrics, in its column order (Table 1).
METRICS = registry.RANKED_METRICS
# Not in the paper: the embedded MOS predictor the metric stage reports in its own column (it
# never fills UTMOS). Tables print it after the twelve when a run has it, marked as such. The
# stage's other extras, DNSMOS's SIG and BAK heads, are in its CSV but in no table.
EXTRA_METRICS = tuple(m for m in registry.EXTRA_METRICS if not m.startswith("DNSMOS_"))

_ALIASES = {
    "DNSMOS": ("dnsmos", "dnsmos_ovrl", "ovrl", "dnsmos_ovr"),
    "NISQA": ("nisqa", "nisqa_mos"),
    "UTMOS": ("utmos",),
    "PESQ": ("pesq",),
    "ESTOI": ("estoi",),
    "SDR": ("sdr",),
    "MCD": ("mcd",),
    "LSD": ("lsd",),
    "SBERT": ("sbert", "speechbertscore", "speech_bert_score", "speechbert"),
    "LPS": ("lps",),
    "SpkSim": ("spksim", "spk_sim", "speaker_similarity"),
    "CAcc": ("cacc", "c_acc", "character_accuracy"),
    "DistillMOS": ("distillmos", "distill_mos"),
}
_BY_ALIAS = {a: m for m, aliases in _ALIASES.items() for a in (m.lower(),) + aliases}


def canonical(column: str) -> str | None:
    """The paper's name of a metric column (`SpeechBERTScore` -> `SBERT`), None if not a metric."""
    return _BY_ALIAS.get(column.strip().lower())


@dataclass(frozen=True)
class Backend:
    """Which model produced a metric column, and whether it is the one URGENT 2025 used."""
    name: str             # as the metric stage names it, with its version
    paper: bool
    reason: str = ""      # why the metric is n/a, when it is (e.g. the weights file to provide)
    short: str = ""       # a few words for a table header

    @property
    def tag(self) -> str:
        """What tables print beside the metric name: nothing for the paper's backend."""
        return "" if self.paper or not self.name else (self.short or self.name)


def short_name(name: str, metric: str = "") -> str:
    """`LPS, pocketsphinx en-us all-phone decoding (CMU phones; English only)` ->
    `pocketsphinx en-us all-phone decoding`: no parentheses, first clause, no metric prefix."""
    import re

    s = re.sub(r"\([^()]*\)", "", name)
    s = s.split(";")[0].strip()
    for prefix in {metric, "SpeechBERTScore", "LPS", "CAcc", "SpkSim"} - {""}:
        s = re.sub(rf"^{re.escape(prefix)}\s*(on|,|:)\s*", "", s)
    return re.sub(r"\s+", " ", s).strip(" ,") or name


@dataclass
class Scores:
    """One system's scores on one split/reference: per-utterance frame and means."""
    system: str
    frame: pd.DataFrame                 # index: utterance id; columns: canonical metrics
    backends: dict[str, Backend] = field(default_factory=dict)
    pooled: dict[str, pd.DataFrame] = field(default_factory=dict)  # metric -> [errors, total] per utt
    notes: pd.Series | None = None      # per utterance: why values are missing (`na`, `error`)

    def mean(self, metric: str, ids=None) -> float:
        """Mean over utterances (`ids` restricts to a subset); NaN when no utterance has a value.

        CAcc is pooled the challenge's way (1 - sum of character errors / sum of reference
        characters) when the metric stage writes its counts; otherwise the per-utterance mean."""
        if metric in self.pooled:
            counts = self.pooled[metric]
            if ids is not None:
                counts = counts.loc[counts.index.intersection(ids)]
            counts = counts.dropna()
            total = counts.iloc[:, 1].sum()
            return float(100.0 * (1.0 - counts.iloc[:, 0].sum() / total)) if total > 0 else math.nan
        if metric not in self.frame:
            return math.nan
        col = self.frame[metric]
        if ids is not None:
            col = col.loc[col.index.intersection(ids)]
        col = pd.to_numeric(col, errors="coerce")
        col = col[np.isfinite(col)]
        return float(col.mean()) if len(col) else math.nan

    def means(self, metrics=METRICS, ids=None) -> dict[str, float]:
        return {m: self.mean(m, ids) for m in metrics}

    def count(self, ids=None) -> int:
        return len(self.frame) if ids is None else len(self.frame.index.intersection(ids))

    def n(self, metric: str, ids=None) -> int:
        """Utterances behind `metric`'s mean: those with a value (for pooled CAcc, those with
        reference characters), of `ids` when given."""
        if metric in self.pooled:
            counts = self.pooled[metric]
            if ids is not None:
                counts = counts.loc[counts.index.intersection(ids)]
            counts = counts.dropna()
            return int((counts.iloc[:, 1] > 0).sum())
        if metric not in self.frame:
            return 0
        col = self.frame[metric]
        if ids is not None:
            col = col.loc[col.index.intersection(ids)]
        col = pd.to_numeric(col, errors="coerce")
        return int(np.isfinite(col).sum())

    def na_reason(self, metric: str) -> str:
        """Why `metric` has no value: the backend's reason, else the most common per-utterance
        note (`CAcc: language 'it': the ASR backend is English only`)."""
        b = self.backends.get(metric)
        if b and b.reason:
            return b.reason
        if metric not in self.frame:
            return "not computed by the metric stage"
        if self.notes is not None:
            import re

            found = []
            for text in self.notes.dropna().astype(str):
                for part in re.split(r";\s*(?=[A-Za-z_]+:)", text):
                    if part.split(":", 1)[0].strip() in (metric, "*", "all"):
                        found.append(part.split(":", 1)[1].strip())
            if found:
                return "; ".join(pd.Series(found).value_counts().index[:3])
        return "no utterance has a value"


_ID_COLUMNS = ("id", "uid", "utt_id", "key", "name")


def read_scores(csv_path: str | Path, system: str | None = None) -> Scores:
    """Read a metrics CSV (and the JSON beside it, when present)."""
    csv_path = Path(csv_path)
    raw = pd.read_csv(csv_path, dtype={c: str for c in _ID_COLUMNS})
    idcol = next((c for c in _ID_COLUMNS if c in raw.columns), None)
    if idcol is None:
        raise ValueError(f"{csv_path}: no utterance id column (expected one of {', '.join(_ID_COLUMNS)})")
    raw = raw.set_index(idcol)
    raw.index = raw.index.astype(str)
    cols = {}
    for c in raw.columns:
        m = canonical(c)
        if m and m not in cols:
            cols[m] = pd.to_numeric(raw[c], errors="coerce")
    frame = pd.DataFrame(cols, index=raw.index)
    pooled = {}
    for errs, tot in (("CAcc_errors", "CAcc_chars"), ("cacc_errors", "cacc_chars"),
                      ("CAcc_edits", "CAcc_ref_chars")):
        if errs in raw and tot in raw:
            pooled["CAcc"] = pd.DataFrame({errs: pd.to_numeric(raw[errs], errors="coerce"),
                                           tot: pd.to_numeric(raw[tot], errors="coerce")})
            break
    notes = None
    for col in ("na", "error"):
        if col in raw:
            part = raw[col].where(raw[col].notna() & (raw[col].astype(str).str.strip() != ""))
            notes = part if notes is None else notes.fillna(part)
    js = csv_path.with_suffix(".json")
    backends = read_backends(js) if js.exists() else {}
    return Scores(system or csv_path.parent.parent.name, frame, backends, pooled, notes)


# Substrings that identify the backends URGENT 2025 used (when the JSON does not say).
_PAPER_NAMES = {
    "DNSMOS": ("dnsmos p.835", "sig_bak_ovr", "dnsmos_p835", "dnsmos"),
    "NISQA": ("nisqa v2", "nisqa.tar", "nisqa"),
    "UTMOS": ("utmos22", "utmos strong", "utmos"),
    "PESQ": ("pesq",), "ESTOI": ("pystoi", "estoi"), "SDR": ("fast_bss_eval", "fast-bss-eval"),
    "MCD": ("pysptk", "mcd"), "LSD": ("lsd",),
    "SBERT": ("mhubert-147", "mhubert"), "LPS": ("wav2vec2-lv-60-espeak",),
    "SpkSim": ("rawnet3", "ecapa"), "CAcc": ("owsm", "whisper large", "whisper-large"),
    "DistillMOS": (),
}


def read_backends(json_path: str | Path) -> dict[str, Backend]:
    """metric -> Backend from the metric stage's JSON.

    Accepts `{"backends": {col: "name" | {"name": ..., "paper": bool, "reason"/"missing": ...}}}`
    (or the same mapping at the top level)."""
    with open(json_path) as f:
        data = json.load(f)
    node = data.get("backends", data) if isinstance(data, dict) else {}
    out: dict[str, Backend] = {}
    for col, b in (node or {}).items():
        m = canonical(str(col))
        if not m or m in out:
            continue
        if isinstance(b, str):
            name, paper, reason = b, None, ""
            raw_name = name
        elif isinstance(b, dict):
            name = str(b.get("name") or b.get("backend") or b.get("model") or "")
            paper = b.get("paper", b.get("paper_backend", b.get("paper_faithful")))
            reason = str(b.get("reason") or b.get("missing") or b.get("error") or "")
            raw_name = name
            if b.get("version") and name and str(b["version"]) not in name:
                name = f"{name} {b['version']}"
        elif b is None:
            name, paper, reason, raw_name = "", False, "no backend available", ""
        else:
            continue
        if paper is None:
            low = name.lower()
            paper = any(s in low for s in _PAPER_NAMES.get(m, ())) and "embedded" not in low
        if name.lower() in ("n/a", "none", "unavailable"):
            name, paper = "", False
        out[m] = Backend(name=name, paper=bool(paper), reason=reason, short=short_name(raw_name, m) if name else "")
    return out


def metric_header(metric: str, backends: dict[str, Backend] | None = None, arrows: bool = True) -> str:
    """`MCD ↓`, or `UTMOS [distillmos]` when the backend is not the paper's."""
    label = metric + (" ↓" if arrows and metric in LOWER_IS_BETTER else "")
    b = (backends or {}).get(metric)
    return f"{label} [{b.tag}]" if b and b.tag else label


def merge_backends(*scores: Scores) -> dict[str, Backend]:
    """One backend per metric across systems; different ones are joined with ` + `."""
    seen: dict[str, list[Backend]] = {}
    for s in scores:
        for m, b in s.backends.items():
            lst = seen.setdefault(m, [])
            if all(x.name != b.name for x in lst):
                lst.append(b)
    out = {}
    for m, lst in seen.items():
        named = [b for b in lst if b.name] or lst
        if len(named) == 1:
            out[m] = named[0]
        else:
            out[m] = Backend(" + ".join(b.name for b in named), all(b.paper for b in named),
                             "; ".join(dict.fromkeys(b.reason for b in named if b.reason)),
                             " + ".join(dict.fromkeys(b.short or b.name for b in named)))
    return out
