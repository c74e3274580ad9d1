"""The transcribed reported numbers (experiments/reported/table{1,2,4,6,7}.csv) against the paper.

Every row and every number of Tables 1, 2, 4 and 6 is compared with the paper's text (the tables
as printed in paper.md, bold tags stripped); Table 7's ranking columns are recomputed with the
metric stage's ranking code. The paper's text is not in the repository: it is $USE_REPRO_PAPER,
else paper/paper.md of the folder $USE_REPRO_SHARED names or of `shared/` beside the clone
(tests/shared.py); the text comparisons are skipped, with that reason, only when it is absent.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest

from tests.shared import shared_dirs, shared_file
from use_repro.config import REPO_ROOT
from use_repro.report.scores import METRICS
from use_repro.report.tables import read_reported

PAPER = (Path(os.environ["USE_REPRO_PAPER"]) if os.environ.get("USE_REPRO_PAPER") and
         Path(os.environ["USE_REPRO_PAPER"]).exists() else shared_file("paper/paper.md"))
needs_paper = pytest.mark.skipif(PAPER is None, reason=(
    "the paper's text is not here: set USE_REPRO_PAPER to paper.md, or put it at "
    "$USE_REPRO_SHARED/paper/paper.md (looked in " + ", ".join(str(d) for d in shared_dirs()) + ")"))


def paper_block(caption_start: str, stop: str) -> list[list[str]]:
    """Rows (tab-split cells, tags stripped) of the table whose caption starts with
    `caption_start`, up to the first line starting with `stop`."""
    lines = PAPER.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(caption_start))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith(stop):
            break
        clean = re.sub(r"</?b>", "", line).strip()
        if clean:
            rows.append([c.strip() for c in clean.split("\t")])
    return rows


def numeric_rows(rows: list[list[str]]) -> list[tuple[str, list[str]]]:
    """(label, printed numbers) for rows whose cells after the label are numbers or '-'."""
    out = []
    for r in rows:
        if len(r) < 2:
            continue
        cells = [c for c in r[1:] if c != ""]
        if cells and all(re.fullmatch(r"-?\d+(\.\d+)?|-", c) for c in cells):
            out.append((r[0], cells))
    return out


def printed(v) -> str:
    """A CSV value as the paper prints it (two decimals; blank = '-')."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{float(v):.2f}"


@needs_paper
def test_table1_every_row_and_number():
    rows = numeric_rows(paper_block("Table 1. Non-blind", "existing approaches"))
    ours = read_reported("table1")
    assert len(rows) == len(ours) == 9
    for (label, nums), (_, r) in zip(rows, ours.iterrows()):
        assert label.replace("+GAN", "").strip() in r["label"], (label, r["label"])
        assert nums == [printed(r[m]) for m in METRICS], r["label"]


@needs_paper
def test_table2_every_row_and_number():
    block = paper_block("Table 2. Comparison", "Table 3.")
    ours = read_reported("table2")
    subset, got = None, []
    for r in block:
        if re.fullmatch(r"[\d.]+k Hz", r[0]):
            subset = r[0].replace(" Hz", "")
            continue
        nums = [c for c in r[1:] if c]
        if nums and all(re.fullmatch(r"-?\d+\.\d+", c) for c in nums):
            got.append((subset, r[0], nums))
    assert len(got) == len(ours) == 6
    for (subset, label, nums), (_, r) in zip(got, ours.iterrows()):
        assert (subset, label) == (r["subset"], r["label"].replace("ClearerVoice", "ClearerVoice"))
        assert nums == [printed(r[m]) for m in METRICS], (subset, label)


@needs_paper
def test_table4_every_row_and_number():
    block = paper_block("Table 4. Speech enhancement", "We employ")
    ours = read_reported("table4")
    lang, got = None, []
    for r in block:
        m = re.fullmatch(r".*\((\w\w_\w\w)\)", r[0])
        if m and len(r) == 1:
            lang = m.group(1)
            continue
        nums = [c for c in r[1:] if c]
        if len(nums) == 3:
            got.append((lang, r[0], nums))
    assert len(got) == len(ours) == 12
    for (lang, label, nums), (_, r) in zip(got, ours.iterrows()):
        assert (lang, label) == (r["language"], r["label"])
        assert nums == [printed(r["DNSMOS"]), printed(r["SpkSim"]), printed(r["CAcc"])], (lang, label)


@needs_paper
def test_table6_every_row_and_number():
    rows = numeric_rows(paper_block("Table 6. Non-blind", "Figure 5"))
    ours = read_reported("table6")
    assert len(rows) == len(ours) == 2
    for (label, nums), (_, r) in zip(rows, ours.iterrows()):
        assert label == r["label"]
        assert nums == [printed(r[m]) for m in ("PESQ", "ESTOI", "SBERT", "LPS", "SpkSim")]


@needs_paper
def test_table1_and_table7_agree_on_shared_rows():
    """The paper prints its own systems, Noisy and the top teams in both tables."""
    t1, t7 = read_reported("table1"), read_reported("table7").set_index("team")
    pairs = {"noisy": "noisy", "baseline": "urgent", "rank1": "Bobbsun", "rank2": "rc", "rank3": "Xiaobin",
             "early": "Our Early reflected", "early_gan": "Our Early reflected + GAN"}
    for sys_id, team in pairs.items():
        row = t1.set_index("system").loc[sys_id]
        for m in METRICS:
            assert printed(row[m]) == printed(t7.loc[team, m]), (sys_id, m)


@needs_paper
def test_table7_spot_checks_against_paper_text():
    block = paper_block("Table 7. The overall ranking", "Table 8.")
    text = {r[0]: r[1:] for r in block if len(r) > 12}
    t7 = read_reported("table7")
    assert len(t7) == 19
    for _, r in t7.iterrows():
        cells = text[r["team"]] if r["team"] in text else text[f"{r['team']}"]
        assert cells[-1] == f"{r['Overall']:.3f}"
        for m, c in zip(METRICS, cells[:12]):
            assert c == f"{printed(r[m])} ({int(r[m + '_rank'])})", (r["team"], m)


def test_table7_ranking_column_matches_ranking_code():
    """Per-metric ranks and Overall of the reported leaderboard, recomputed by the metric stage's
    ranking code. Lam-Fung is the one row the paper prints rounded instead of truncated
    (1181/120 = 9.8417 -> printed 9.842; every other row truncates), see metrics/ranking.py."""
    from use_repro.metrics.ranking import rank_table
    from use_repro.report.tables import _from_ranking_names, _to_ranking_names

    t7 = read_reported("table7")
    ranked = _from_ranking_names(rank_table(_to_ranking_names(t7[["team"] + list(METRICS)])))
    ranked = ranked.set_index("team")
    for _, r in t7.iterrows():
        got = ranked.loc[r["team"]]
        for m in METRICS:
            assert int(got[f"{m}_rank"]) == int(r[f"{m}_rank"]), (r["team"], m)
        if r["team"] == "Lam-Fung":
            assert got["Overall"] == pytest.approx(9.841) and round(got["Overall_exact"], 3) == r["Overall"]
        else:
            assert got["Overall"] == pytest.approx(r["Overall"], abs=1e-9), r["team"]
    assert list(ranked.index[:3]) == ["Bobbsun", "Our Early reflected + GAN", "rc"]


def test_reported_tables_are_complete():
    for name, n in (("table1", 9), ("table2", 6), ("table4", 12), ("table6", 2)):
        df = read_reported(name)
        assert len(df) == n
        assert df["system"].is_unique or name in ("table2", "table4")
        numeric = df.drop(columns=[c for c in ("system", "label", "subset", "language") if c in df])
        assert numeric.notna().sum().sum() == numeric.size - (3 if name == "table4" else 0)
    assert (REPO_ROOT / "experiments" / "reported" / "table7.csv").exists()
