"""Where each experiment's files live: one place for the DAG rules and the report code.

    results/<profile>/<experiment>/final.pt, curves.csv           training (use-repro train)
    results/<profile>/<experiment>/valid_scores.csv                its per-utterance validation scores
    results/<profile>/<experiment>/enhanced/{test,unseen}/         enhancement (use-repro enhance)
    results/<profile>/<system>/eval/test_{early,anechoic}.csv      metrics (use-repro evaluate), + .json
    results/<profile>/<system>/eval/unseen.csv                     held-out languages, + .json
    results/<profile>/<experiment>/residual_correlation.json       gan runs (Section 3.6)
    results/<profile>/tables/<table>.{md,csv,tex}                  report tables, compare.{md,csv}
    figures/<profile>/<figure>.{png,pdf}                           report figures

`<system>` is an experiment or one of the pseudo-systems `noisy` (the unprocessed test input)
and `original` (the unprocessed held-out recordings).
"""
from __future__ import annotations

from pathlib import Path

# The references the test set is scored against: the challenge's (early-reflected, Table 1)
# and anechoic clean speech (Table 6).
REFERENCES = ("early", "anechoic")

# The reference-based metrics the paper's Table 6 prints: what the anechoic-reference evaluation
# computes and what the report's Table 6 shows.
TABLE6_METRICS = ("PESQ", "ESTOI", "SBERT", "LPS", "SpkSim")

# Table files the report writes; each is written as .md, .csv and .tex.
TABLES = ("table1", "table6", "table7", "table2", "table4", "datasize")

# Figures the report draws (the VQScore histograms fig2/fig7 are drawn by the vqscore rules).
FIGURES = ("fig3a", "fig3b", "fig9", "fig5", "fig6", "fig8", "residual_correlation")


def run_dir(results: str | Path, exp: str) -> Path:
    return Path(results) / exp


def checkpoint(results: str | Path, exp: str) -> Path:
    return run_dir(results, exp) / "final.pt"


def curves(results: str | Path, exp: str) -> Path:
    return run_dir(results, exp) / "curves.csv"


def valid_scores(results: str | Path, exp: str) -> Path:
    return run_dir(results, exp) / "valid_scores.csv"


def enhanced(results: str | Path, exp: str, split: str = "test") -> Path:
    return run_dir(results, exp) / "enhanced" / split


def eval_csv(results: str | Path, system: str, split: str = "test", ref: str | None = "early") -> Path:
    name = f"{split}_{ref}.csv" if ref else f"{split}.csv"
    return run_dir(results, system) / "eval" / name


def eval_json(results: str | Path, system: str, split: str = "test", ref: str | None = "early") -> Path:
    return eval_csv(results, system, split, ref).with_suffix(".json")


def residual_correlation(results: str | Path, exp: str) -> Path:
    return run_dir(results, exp) / "residual_correlation.json"


def tables_dir(results: str | Path) -> Path:
    return Path(results) / "tables"


def table_files(results: str | Path, table: str) -> dict[str, Path]:
    base = tables_dir(results) / table
    return {ext: base.with_suffix(f".{ext}") for ext in ("md", "csv", "tex")}
