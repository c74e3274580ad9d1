"""The paper's tables from our runs, with the reported rows beside ours.

Each builder takes loaded data (metric `Scores`, the reported CSV as a DataFrame, ...) and returns
a `render.Table`; `write_tables` loads a run's files and writes every table as Markdown, CSV and
LaTeX. Rows carry `system` (an id shared by the reported CSV and our experiment names), `label`
(as printed) and `source` (`paper` or `reproduced`), so `compare` can pair them.

- Table 1: Noisy and each system on the test set, all twelve metrics, early-reflected reference.
- Table 6: the same systems against anechoic clean speech.
- Table 7: the challenge's ranking recomputed over the reported leaderboard plus our systems.
- Table 2 analogue: the 48 kHz and 44.1 kHz subsets of our test set.
- Table 4 analogue: the held-out languages (DNSMOS, SpkSim enhanced vs original, CAcc).
- datasize: training data kept at each VQScore threshold.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from use_repro.report import layout
from use_repro.report.render import Table
from use_repro.report.scores import (EXTRA_METRICS, METRICS, Backend, Scores,
                                     merge_backends, metric_header)

log = logging.getLogger(__name__)

PAPER, OURS = "paper", "reproduced"
REPORTED_DIR = Path(__file__).resolve().parents[3] / "experiments" / "reported"


@dataclass
class System:
    """A system of our run as the tables print it."""
    id: str            # experiment name, or `noisy` / `original`
    label: str
    scores: Scores
    paper_id: str = ""  # the reported row it sits beside (defaults to `id`)

    @property
    def pairs_with(self) -> str:
        return self.paper_id or self.id


def read_reported(name: str, reported_dir: str | Path = REPORTED_DIR) -> pd.DataFrame:
    """experiments/reported/<name>.csv with metric columns as floats (a blank cell is NaN)."""
    return pd.read_csv(Path(reported_dir) / f"{name}.csv", dtype={"subset": str, "language": str})


def _paper_row(r: pd.Series, keys: dict, metrics) -> dict:
    row = {**keys, "system": r["system"], "label": r["label"], "source": PAPER}
    for m in metrics:
        v = r.get(m)
        row[m] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    return row


def _our_row(s: System, keys: dict, metrics, ids=None, suffix=" (ours)") -> dict:
    row = {**keys, "system": s.id, "label": s.label + suffix, "source": OURS,
           "n": s.scores.count(ids)}
    row.update(s.scores.means(metrics, ids))
    return row


def _interleave(paper: pd.DataFrame, ours: list[System], make_paper, make_ours) -> list[dict]:
    """Paper rows in the paper's order, each of ours right after the reported row it pairs with;
    ours without a reported counterpart at the end."""
    rows, placed = [], set()
    for _, r in paper.iterrows():
        rows.append(make_paper(r))
        for s in ours:
            if s.pairs_with == r["system"] and s.id not in placed:
                rows.append(make_ours(s))
                placed.add(s.id)
    rows += [make_ours(s) for s in ours if s.id not in placed]
    return rows


def _na_notes(systems: list[System], metrics) -> list[str]:
    notes = []
    for m in metrics:
        missing = [s for s in systems if math.isnan(s.scores.mean(m))]
        if missing:
            reasons = sorted({s.scores.na_reason(m) for s in missing})
            who = "all our systems" if len(missing) == len(systems) else ", ".join(s.label for s in missing)
            notes.append(f"{m} is n/a for {who}: {'; '.join(reasons)}.")
    return notes


def _n_notes(systems: list[System], metrics, ids=None, where: str = "",
             blank: dict[str, set[str]] | None = None) -> list[str]:
    """Per-metric n: how many utterances each metric's mean stands on (CAcc and LPS, for one,
    cover English rows only). One note per group of our systems with the same counts, and the
    reason where a metric covers fewer utterances than the row's Utts. `where` prefixes the
    note (a subset or a language); `blank` (system id -> metrics) are cells the table leaves
    empty, written `—`."""
    blank = blank or {}
    groups: dict[tuple, list[System]] = {}
    for s in systems:
        counts = tuple(None if m in blank.get(s.id, ()) else s.scores.n(m, ids) for m in metrics)
        groups.setdefault(counts, []).append(s)
    notes = []
    for counts, who in groups.items():
        utts = max(s.scores.count(ids) for s in who)
        if utts == 0:
            continue
        name = "every system of ours" if len(groups) == 1 else ", ".join(s.label for s in who)
        text = ", ".join(f"{m} {'—' if n is None else n}" for m, n in zip(metrics, counts))
        fewer = [f"{m}: {who[0].scores.na_reason(m)}" for m, n in zip(metrics, counts)
                 if n is not None and 0 < n < utts]
        notes.append(f"{where}n per metric ({name}; Utts {utts}): {text}."
                     + (f" Fewer than Utts — {'; '.join(fewer)}." if fewer else ""))
    return notes


def _backend_notes(backends: dict[str, Backend], metrics) -> list[str]:
    other = [f"{m}: {backends[m].name}" for m in metrics if m in backends and backends[m].tag]
    if not other:
        return []
    return ["Metrics in brackets come from a backend other than the one URGENT 2025 used, so their "
            "values are not on the paper's scale: " + "; ".join(other) + "."]


def _with_extras(systems: list[System]) -> list[str]:
    """The twelve metrics plus any extra column (DistillMOS) one of our systems has."""
    extra = [m for m in EXTRA_METRICS if any(not math.isnan(s.scores.mean(m)) for s in systems)]
    return list(METRICS) + extra


def _extra_notes(metrics) -> list[str]:
    if "DistillMOS" in metrics:
        return ["DistillMOS is not one of the paper's metrics: it is the embedded MOS predictor, a "
                "different model from UTMOS, shown in its own column (— for the paper's rows)."]
    return []


def _headers(backends, metrics) -> dict[str, str]:
    return {m: metric_header(m, backends) for m in metrics} | {"label": "System", "source": "Source", "n": "Utts"}


def table1(noisy: System, systems: list[System], reported: pd.DataFrame, profile: str,
           decimals: int = 2) -> Table:
    """Table 1: the test set, early-reflected reference (as the challenge scores it)."""
    ours = [noisy] + systems
    backends = merge_backends(*(s.scores for s in ours))
    metrics = _with_extras(ours)
    t = Table(
        name="table1",
        title=(f"Table 1 (reproduced, profile {profile}). Test set, all metrics higher is better "
               "except MCD and LSD; intrusive and task metrics use the early-reflected reference, "
               "as the challenge does. Paper rows are the URGENT 2025 non-blind test set."),
        keys=["system", "label", "source", "n"], values=metrics,
        shown_keys=["label", "source", "n"], headers=_headers(backends, metrics),
        default_decimals=decimals)
    t.rows = _interleave(reported, ours, lambda r: _paper_row(r, {}, metrics),
                         lambda s: _our_row(s, {}, metrics))
    t.notes = _backend_notes(backends, metrics) + _na_notes(ours, METRICS) + _n_notes(ours, metrics) + \
        _extra_notes(metrics) + [
        "Shifted-target systems are scored against early-reflected references here, which the "
        "paper notes penalises their intrusive metrics; Table 6 re-references them."]
    return t


def table6(systems: list[System], reported: pd.DataFrame, profile: str, decimals: int = 2) -> Table:
    """Table 6: the same systems against anechoic clean speech (the paper's five metrics)."""
    backends = merge_backends(*(s.scores for s in systems))
    metrics = list(layout.TABLE6_METRICS)
    t = Table(
        name="table6",
        title=(f"Table 6 (reproduced, profile {profile}). Test set referenced against anechoic "
               "clean speech."),
        keys=["system", "label", "source", "n"], values=metrics, shown_keys=["label", "source", "n"],
        headers=_headers(backends, metrics), default_decimals=decimals)
    t.rows = _interleave(reported, systems, lambda r: _paper_row(r, {}, metrics),
                         lambda s: _our_row(s, {}, metrics))
    t.notes = _backend_notes(backends, metrics) + _na_notes(systems, metrics) + _n_notes(systems, metrics) + [
        "The paper prints Table 6 for its two GAN systems only; our other systems have no reported row."]
    return t


SUBSETS = (("48k", 48000, "48 kHz"), ("44.1k", 44100, "44.1 kHz"))


def table2(noisy: System, systems: list[System], fs_by_id: dict[str, int], reported: pd.DataFrame,
           profile: str, decimals: int = 2) -> Table:
    """Table 2 analogue: our systems on the 48 kHz and 44.1 kHz utterances of our test set."""
    ours = [noisy] + systems
    backends = merge_backends(*(s.scores for s in ours))
    metrics = _with_extras(ours)
    t = Table(
        name="table2",
        title=(f"Table 2 analogue (profile {profile}). Our systems on the 48 kHz and 44.1 kHz "
               "subsets of our test set, beside the paper's comparison with open-source models "
               "on the same subsets of the URGENT 2025 non-blind test set."),
        keys=["subset", "system", "label", "source", "n"], values=metrics,
        shown_keys=["label", "source", "n"], headers=_headers(backends, metrics),
        group="subset_name", default_decimals=decimals)
    notes, n_notes = [], []
    for key, fs, name in SUBSETS:
        ids = [u for u, f in fs_by_id.items() if int(f) == fs]
        if not ids:
            notes.append(f"Our test set has no {name} utterance, so its rows are n/a.")
        n_notes += _n_notes(ours, metrics, ids, f"{name}: ") if ids else []
        paper = reported[reported["subset"] == key]
        grp = {"subset": key, "subset_name": name}
        t.rows += _interleave(paper, ours, lambda r: _paper_row(r, grp, metrics),
                              lambda s: _our_row(s, grp, metrics, ids))
    t.notes = notes + _backend_notes(backends, metrics) + n_notes + _extra_notes(metrics) + [
        "ClearerVoice-Studio and Resemble Enhance are not rerun here (their weights come from a model hub)."]
    return t


# Our held-out language codes -> the paper's Table 4 (FLEURS) codes.
PAPER_LANGUAGES = {"it": "it_it", "nl": "nl_nl", "ja": "ja_jp", "ru": "ru_ru"}


def table4(original: System, systems: list[System], lang_by_id: dict[str, str],
           reported: pd.DataFrame, profile: str, decimals: int = 2,
           languages: dict[str, str] | None = None) -> Table:
    """Table 4 analogue: the held-out languages. DNSMOS of each version, SpkSim of the enhanced
    speech against the original recording, CAcc where the ASR backend covers the language.

    `languages` maps our language codes to the paper's (it -> it_it); the paper's languages we
    do not have appear with their reported rows only."""
    languages = languages or PAPER_LANGUAGES
    metrics = ["DNSMOS", "SpkSim", "CAcc"]
    ours = [original] + systems
    backends = merge_backends(*(s.scores for s in ours))
    t = Table(
        name="table4",
        title=(f"Table 4 analogue (profile {profile}). Unseen languages: held-out recordings "
               "never used in training. SpkSim compares enhanced speech with the original recording."),
        keys=["language", "system", "label", "source", "n"], values=metrics,
        shown_keys=["label", "source", "n"], headers=_headers(backends, metrics),
        group="language_name", default_decimals=decimals)
    our_langs = sorted({v for v in lang_by_id.values()})
    paper_langs = list(dict.fromkeys(reported["language"]))
    order = list(dict.fromkeys([languages.get(code, code) for code in our_langs] + paper_langs))
    back = {v: k for k, v in languages.items()}
    n_notes = []
    for lang in order:
        ours_code = back.get(lang, lang)
        ids = [u for u, code in lang_by_id.items() if code == ours_code]
        grp = {"language": lang, "language_name": _language_name(lang)}
        paper = reported[reported["language"] == lang]
        if ids:
            n_notes += _n_notes(ours, metrics, ids, f"{grp['language_name']}: ", {original.id: {"SpkSim"}})

        def make_ours(s, grp=grp, ids=ids):
            row = _our_row(s, grp, metrics, ids if ids else [])
            if s.id == original.id:
                row["SpkSim"] = None  # the paper prints "-": the original against itself
            return row

        t.rows += _interleave(paper, ours if ids else [], lambda r, grp=grp: _paper_row(r, grp, metrics),
                              make_ours)
    t.notes = _backend_notes(backends, metrics) + _na_notes(ours, ["DNSMOS", "CAcc"]) + n_notes + [
        "Languages the paper evaluates (FLEURS it/nl/ja) and ours (held-out recordings) differ "
        "except Italian; FLEURS-R is not rerun here."]
    return t


_LANG_NAMES = {"it": "Italian", "ru": "Russian", "nl": "Dutch", "ja": "Japanese", "en": "English",
               "de": "German", "fr": "French", "es": "Spanish", "zh": "Chinese"}


def _language_name(code: str) -> str:
    return f"{_LANG_NAMES.get(code.split('_')[0], code)} ({code})"


# Section 3.4: hours of training speech kept at each VQScore threshold.
PAPER_DATASIZE = (("0.50 (no filtering)", 2518.0), ("0.65", 2506.0), ("0.72", 629.0))


def datasize(sizes: pd.DataFrame, profile: str, thresholds: list[str] | None = None,
             decimals: int = 2) -> Table:
    """Training data kept per VQScore threshold, beside the paper's hours (Section 3.4).

    `sizes`: the VQScore stage's data-size table — one row per threshold (or per threshold and
    source); columns `threshold`, `hours`, `utterances` (others are ignored). Totals over
    sources are taken when a `source` column is present."""
    df = sizes.copy()
    thr_col = next(c for c in ("name", "threshold", "filter") if c in df.columns)
    if "source" in df.columns:  # a long table (threshold, source, ...): total over sources
        total = df["source"].astype(str).str.lower().isin(["all", "total", "*"])
        df = df[total] if total.any() else df.groupby(thr_col, sort=False, as_index=False).sum(numeric_only=True)
    hours_col = next((c for c in ("hours", "kept_hours", "duration_h") if c in df.columns), None)
    utt_col = next((c for c in ("utterances", "kept_utterances", "n_utts", "count") if c in df.columns), None)
    value_col = next((c for c in ("threshold", "value", "score") if c in df.columns and c != thr_col), None)
    order = thresholds or list(df[thr_col].astype(str))
    base_hours = None
    t = Table(name="datasize",
              title=(f"Training data kept by VQScore filtering (profile {profile}) beside the "
                     "paper's Section 3.4 (thresholds 0.50, 0.65, 0.72 on the released estimator)."),
              keys=["threshold", "source"], values=["value", "hours", "utterances", "kept_pct",
                                                    "paper_threshold", "paper_hours", "paper_kept_pct"],
              headers={"threshold": "Threshold", "source": "Source", "value": "VQScore ≥",
                       "hours": "Hours", "utterances": "Utts", "kept_pct": "Kept %",
                       "paper_threshold": "Paper threshold", "paper_hours": "Paper hours",
                       "paper_kept_pct": "Paper kept %"},
              decimals={"value": 3, "hours": 3, "utterances": 0, "kept_pct": 1, "paper_hours": 0,
                        "paper_kept_pct": 1}, default_decimals=decimals)
    rows = {str(r[thr_col]): r for _, r in df.iterrows()}
    for i, name in enumerate(order):
        r = rows.get(name)
        if r is None:
            continue
        hours = float(r[hours_col]) if hours_col else math.nan
        base_hours = hours if base_hours is None else base_hours
        row = {"threshold": name, "source": OURS,
               "value": float(r[value_col]) if value_col and pd.notna(r[value_col]) else None,
               "hours": hours, "utterances": int(r[utt_col]) if utt_col else None,
               "kept_pct": 100.0 * hours / base_hours if base_hours else math.nan}
        if i < len(PAPER_DATASIZE):
            pname, phours = PAPER_DATASIZE[i]
            row.update(paper_threshold=pname, paper_hours=phours,
                       paper_kept_pct=100.0 * phours / PAPER_DATASIZE[0][1])
        else:
            row.update(paper_threshold=None, paper_hours=None, paper_kept_pct=None)
        t.rows.append(row)
    t.notes = ["Kept % is relative to the first (least strict) threshold. The paper's thresholds "
               "are absolute scores of the released VQScore model; a profile with its own "
               "estimator mirrors the paper's cuts as kept fractions."]
    return t


def _ranked(board: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`board` (team, source, metric columns) ranked with the challenge's rule; a metric with no
    value for some row is left out of the ranking for every row (the ranking code then averages
    a category over the metrics it has), its values kept without ranks."""
    from use_repro.metrics.ranking import rank_table

    dropped = [m for m in METRICS if board[m].isna().any()]
    ranked = _from_ranking_names(rank_table(_to_ranking_names(board.drop(columns=dropped))).reset_index(drop=True))
    if dropped:
        ranked = ranked.merge(board[["team", "source"] + dropped], on=["team", "source"], how="left")
    return ranked, dropped


def table7(leaderboard: pd.DataFrame, ours: list[System], profile: str) -> Table:
    """Table 7: the paper's leaderboard as reported, ranked among itself, and then our systems
    (with our Noisy) ranked among themselves, both with the metric stage's ranking code (ties
    share the lowest rank; Overall truncated). Ours are never ranked inside the paper's
    leaderboard: another test set, and some metrics from other backends."""
    name_col = next(c for c in ("team", "system", "name") if c in leaderboard.columns)
    lb = leaderboard.rename(columns={name_col: "team"})
    board = pd.DataFrame({"team": lb["team"].astype(str), "source": PAPER})
    for m in METRICS:
        col = _find_metric_col(lb, m)
        board[m] = pd.to_numeric(lb[col], errors="coerce") if col else math.nan
    paper_ranked, _ = _ranked(board)
    extra = pd.DataFrame([{"team": s.label + " (ours)", "source": OURS, **s.scores.means(METRICS)} for s in ours])
    ours_ranked, dropped = _ranked(extra) if len(extra) else (extra, [])
    backends = merge_backends(*(s.scores for s in ours))
    t = Table(name="table7",
              title=(f"Table 7 (profile {profile}): the URGENT 2025 non-blind leaderboard as reported, ranked "
                     "among itself, then our systems and our Noisy ranked among themselves, both with the "
                     "challenge's rule (per-metric ranks on two-decimal averages, ties share the lowest rank, "
                     "category means, Overall truncated to three decimals)."),
              keys=["team", "source"], values=list(METRICS) + ["Overall"],
              headers={"team": "Team", "source": "Source", **{m: metric_header(m, backends) for m in METRICS},
                       "Overall": "Overall ranking"},
              suffix={m: f"{m}_rank" for m in METRICS}, decimals={"Overall": 3})
    for ranked in (paper_ranked, ours_ranked):
        for _, r in ranked.iterrows():
            row = {"team": r["team"], "source": r["source"], "Overall": float(r["Overall"])}
            for m in METRICS:
                v = r.get(m)
                row[m] = float(v) if pd.notna(v) else math.nan
                rk = r.get(f"{m}_rank")
                row[f"{m}_rank"] = float(rk) if pd.notna(rk) else None
            t.rows.append(row)
    t.notes = _backend_notes(backends, METRICS) + _n_notes(ours, list(METRICS)) + [
        f"Our rows (source `reproduced`) are ranked among themselves on this profile's ({profile}) test "
        "set; the paper's rows among themselves as reported. The two rankings are not comparable with "
        "each other: other test sets, and some of our metrics from other backends."]
    if dropped:
        t.notes.append(f"Left out of our ranking (n/a for some of our systems): {', '.join(dropped)}; "
                       "their values are shown without ranks and their categories are averaged over the "
                       "remaining metrics.")
    return t


def _find_metric_col(df: pd.DataFrame, metric: str) -> str | None:
    from use_repro.report.scores import canonical

    for c in df.columns:
        if not str(c).lower().endswith("_rank") and canonical(str(c)) == metric:
            return c
    return None


def _ranking_names() -> dict[str, str]:
    """Our metric names -> the ranking code's column names."""
    from use_repro.metrics import registry
    from use_repro.report.scores import canonical

    names = [m for ms in registry.CATEGORIES.values() for m in ms]
    return {canonical(n): n for n in names if canonical(n)}


def _to_ranking_names(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=_ranking_names())


def _from_ranking_names(df: pd.DataFrame) -> pd.DataFrame:
    back = {v: k for k, v in _ranking_names().items()}
    ren = {}
    for c in df.columns:
        if c in back:
            ren[c] = back[c]
        elif c.endswith("_rank") and c[:-5] in back:
            ren[c] = back[c[:-5]] + "_rank"
    return df.rename(columns=ren)
