"""`use-repro rank`: the URGENT 2025 overall ranking of systems from their metric averages.

The challenge ranks every system on every metric (MCD and LSD lower is better, the rest higher),
averages the ranks inside each of the four categories (non-intrusive, intrusive, task-independent,
task-dependent) and averages the four category means. Two details are not in the challenge's
prose and were established from the paper's Table 7 (experiments/reported/table7.csv, checked in
tests/metrics/test_ranking.py):

- ranks are taken on the averages *as printed* (two decimals) and tied values share the lowest
  rank of their group ("min", or competition ranking: 1, 2, 2, 4): Table 7 prints 3.01 (8) for
  two teams and the next team 3.00 (10); all 228 printed ranks are reproduced this way;
- the Overall column is *truncated* (not rounded) to three decimals: Bobbsun's ranks give
  2.51667 and Table 7 prints 2.516. 18 of 19 rows agree with truncation; the Lam-Fung row does
  not (its ranks give 1181/120 = 9.841667, truncated 9.841, printed 9.842 — the rounded value;
  no combination of ranks can truncate to 9.842 because every overall score is a multiple
  of 1/120).

Input: a CSV with one row per system, a name column (`team`, `system` or the first column) and
metric columns named as in `registry.RANKED_METRICS`; `*_rank` and `Overall` columns are ignored.
Output: the same table with a `<metric>_rank` column per metric, the four category means, and
`Overall`, sorted by `Overall`.

Checked before ranking (`validate_table`), each failure naming the row and column:
- every metric cell must be a number; a non-numeric cell is an error;
- team names must be unique (a duplicate is an error naming it);
- an empty (NaN) cell in a metric column that other systems have is an error: ranking it last,
  or averaging the system's other ranks, would each silently change every Overall. A metric
  that no system has (an all-empty column, e.g. a metric that is n/a for the whole table) is
  left out of the ranking for everyone, with a warning.
"""
from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from use_repro.metrics.registry import CATEGORIES, HIGHER_IS_BETTER, RANKED_METRICS

if TYPE_CHECKING:  # pandas loads where a table is read or ranked, not for `use-repro rank --help`
    import pandas as pd

log = logging.getLogger(__name__)

# Table 7 prints every average with two decimals and ranks those printed numbers.
DEFAULT_DECIMALS = 2
OVERALL_DECIMALS = 3


def rank_metric(values: pd.Series, higher_is_better: bool, decimals: int | None = DEFAULT_DECIMALS) -> pd.Series:
    """Competition ranks (1 = best; ties share the lowest rank) of `values` [N].

    Values are rounded to `decimals` first (None: ranked as they are); NaN gets no rank.
    """
    v = values.astype(float)
    if decimals is not None:
        v = v.round(decimals)
    return (-v if higher_is_better else v).rank(method="min", na_option="keep")


def truncate(x: float, decimals: int = OVERALL_DECIMALS) -> float:
    """Cut `x` to `decimals` decimals, as the leaderboard's Overall column does.

    A tiny tolerance absorbs binary representation error (5.0333333 stays 5.033, and
    3.0 computed as 2.99999999997 stays 3.000).
    """
    scale = 10 ** decimals
    return math.floor(x * scale + 1e-9) / scale


def validate_table(df: pd.DataFrame, name: str = "team", source: str = "table") -> pd.DataFrame:
    """`df` with its ranked-metric columns as floats, after the checks in the module doc.

    Raises ValueError naming the row (1-based data row and team) and column of every bad cell,
    or the duplicated team names. `source` names the table in the message.
    """
    import pandas as pd

    out = df.copy()
    if name in out.columns:
        teams = out[name].astype(str)
        dup = sorted(set(teams[teams.duplicated(keep=False)]))
        if dup:
            raise ValueError(f"{source}: duplicate {name} name(s): {', '.join(repr(d) for d in dup)}; "
                             f"each system must appear once")
    else:
        teams = pd.Series([f"row {i + 1}" for i in range(len(out))], index=out.index)
    problems = []
    for m in RANKED_METRICS:
        if m not in out.columns:
            continue
        col = out[m]
        num = pd.to_numeric(col, errors="coerce")
        for k, (raw, val) in enumerate(zip(col, num)):
            if pd.isna(val) and not pd.isna(raw) and str(raw).strip() != "":
                problems.append(f"row {k + 1} ({teams.iloc[k]}), column {m}: {raw!r} is not a number")
        if num.notna().any():
            for k, val in enumerate(num):
                if pd.isna(val) and (pd.isna(col.iloc[k]) or str(col.iloc[k]).strip() == ""):
                    problems.append(f"row {k + 1} ({teams.iloc[k]}), column {m}: empty (NaN) while other "
                                    f"systems have {m}; fill it or drop the column for every system")
        out[m] = num.astype(float)
    if problems:
        raise ValueError(f"{source}: cannot rank:\n  " + "\n  ".join(problems))
    return out


def rank_table(df: pd.DataFrame, decimals: int | None = DEFAULT_DECIMALS,
               overall_decimals: int = OVERALL_DECIMALS) -> pd.DataFrame:
    """Rank systems (rows of `df`) on every ranked metric column present; see module doc.

    Categories whose metrics are all absent are left out of the mean (and logged), so a table
    without NISQA and UTMOS ranks non-intrusive quality on DNSMOS alone. The table is checked
    first (`validate_table`): a non-numeric or empty cell, or a duplicate team, is an error.
    """
    out = validate_table(df, _name_column(df) if len(df.columns) else "team")
    cat_cols = []
    for cat, metrics in CATEGORIES.items():
        present = [m for m in metrics if m in out.columns and out[m].notna().any()]
        missing = [m for m in metrics if m not in present]
        if missing:
            log.warning("rank: category %s lacks %s; its mean uses %s", cat, ", ".join(missing),
                        ", ".join(present) or "nothing (category dropped)")
        for m in present:
            out[f"{m}_rank"] = rank_metric(out[m], HIGHER_IS_BETTER[m], decimals)
        if present:
            out[cat] = out[[f"{m}_rank" for m in present]].mean(axis=1, skipna=False)
            cat_cols.append(cat)
    if not cat_cols:
        raise ValueError("rank: no ranked metric column found; expected some of "
                         + ", ".join(m for ms in CATEGORIES.values() for m in ms))
    exact = out[cat_cols].mean(axis=1, skipna=False)
    out["Overall_exact"] = exact
    out["Overall"] = [truncate(x, overall_decimals) if np.isfinite(x) else np.nan for x in exact]
    return out.sort_values("Overall_exact", kind="stable")


def overall_scores(means: np.ndarray, higher_is_better, categories,
                   decimals: int | None = DEFAULT_DECIMALS) -> np.ndarray:
    """The exact (untruncated) Overall of :func:`rank_table` for many tables at once.

    `means` [B, S, M]: B tables of S systems x M metrics (no NaN); `higher_is_better` [M] bools;
    `categories` [M] category labels. Per table: competition ranks of the values rounded to
    `decimals` (ties share the lowest rank), the mean rank inside each category, the mean of
    the category means. Returns [B, S]. The report's bootstrap ranks one resampled test set per
    row; `rank_table` is the reference it is tested against."""
    from scipy.stats import rankdata

    v = np.asarray(means, dtype=np.float64)
    if decimals is not None:
        v = np.round(v, decimals)
    signs = np.where(np.asarray(higher_is_better, dtype=bool), -1.0, 1.0)
    ranks = rankdata(v * signs, method="min", axis=1)  # [B, S, M], ranked over systems
    cats = list(dict.fromkeys(categories))
    per_cat = [ranks[..., [k for k, c in enumerate(categories) if c == cat]].mean(axis=-1) for cat in cats]
    return np.mean(np.stack(per_cat, axis=-1), axis=-1)


def _name_column(df: pd.DataFrame) -> str:
    for c in ("team", "system", "name"):
        if c in df.columns:
            return c
    return df.columns[0]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="CSV",
                   help="a table with one row per system and metric columns, or several "
                        "`use-repro evaluate` JSON files (one per system; the system is the "
                        "file's stem)")
    p.add_argument("--out", help="write the ranked table here (CSV); printed otherwise")
    p.add_argument("--config", help="profile name or YAML whose evaluate.rank_decimals sets --decimals")
    p.add_argument("--decimals", type=int, default=None,
                   help="round averages to this many decimals before ranking (-1: no rounding; "
                        f"default {DEFAULT_DECIMALS}, as the paper's Table 7)")


def _load(inputs: list[str]) -> pd.DataFrame:
    import json

    import pandas as pd

    if len(inputs) == 1 and not inputs[0].endswith(".json"):
        df = pd.read_csv(inputs[0])
        name = _name_column(df)
        keep = [c for c in df.columns if not c.endswith("_rank") and c not in ("Overall",) + tuple(CATEGORIES)]
        df = df[keep].rename(columns={name: "team"})
        return validate_table(df, "team", inputs[0])
    rows = []
    for path in inputs:
        info = json.loads(Path(path).read_text())
        rows.append({"team": Path(path).stem, **{k: v for k, v in info["averages"].items()}})
    df = pd.DataFrame(rows)
    # JSON null (n/a) becomes NaN; validate_table then refuses a metric n/a for only some systems
    # and reports a non-numeric value by file and column.
    return validate_table(df, "team", " + ".join(inputs))


def run(args: argparse.Namespace) -> int:
    decimals = args.decimals
    if decimals is None and args.config:
        from use_repro.config import load_config

        decimals = load_config(args.config)["evaluate"]["rank_decimals"]
    decimals = DEFAULT_DECIMALS if decimals is None else decimals
    df = _load(args.inputs)
    ranked = rank_table(df, None if decimals < 0 else decimals)
    cols = ["team"] + [c for ms in CATEGORIES.values() for m in ms for c in (m, f"{m}_rank") if c in ranked]
    cols += [c for c in CATEGORIES if c in ranked] + ["Overall"]
    table = ranked[cols]
    if args.out:
        from use_repro.fs import atomic_path

        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
        log.info("rank: %d systems -> %s", len(table), args.out)
    else:
        import pandas as pd

        with pd.option_context("display.width", 250, "display.max_columns", 100):
            print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0
