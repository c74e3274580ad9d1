"""A table as data, written three ways: Markdown (README, GitHub), CSV (full precision), LaTeX.

Cells of a metric column are floats: NaN prints as `n/a` (the metric could not be computed; the
table's notes say why) and None as `—` (the paper does not report it). Key columns are strings.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from use_repro.fs import write_text_atomic

NA = "n/a"
NOT_REPORTED = "—"


@dataclass
class Table:
    name: str                          # file stem: table1, table6, ...
    title: str                         # caption
    keys: list[str]                    # key columns (CSV names), e.g. ["system", "label", "source"]
    values: list[str]                  # value columns (CSV names), e.g. the metrics
    rows: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)    # printed header per column
    shown_keys: list[str] | None = None                      # key columns printed in md/tex
    notes: list[str] = field(default_factory=list)
    group: str | None = None           # key column whose value starts a new block (md/tex)
    decimals: dict[str, int] = field(default_factory=dict)   # per value column; default below
    default_decimals: int = 2
    suffix: dict[str, str] = field(default_factory=dict)     # column -> companion column printed "v (r)"

    def header(self, col: str) -> str:
        return self.headers.get(col, col)

    def cell(self, row: dict, col: str) -> str:
        v = row.get(col)
        text = _fmt(v, self.decimals.get(col, self.default_decimals))
        companion = self.suffix.get(col)
        if companion and row.get(companion) is not None and text not in (NA, NOT_REPORTED):
            r = row[companion]
            text += f" ({_fmt(r, 0) if isinstance(r, float) and float(r).is_integer() else _fmt(r, 1)})"
        return text

    def printed_keys(self) -> list[str]:
        keys = self.shown_keys if self.shown_keys is not None else self.keys
        return [k for k in keys if k != self.group]


def _fmt(v, decimals: int) -> str:
    if v is None:
        return NOT_REPORTED
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "yes" if v else "no"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return NA
    if isinstance(v, int):
        return str(v)
    return f"{f:.{decimals}f}"


def to_markdown(t: Table) -> str:
    cols = t.printed_keys() + t.values
    heads = [t.header(c) for c in cols]
    out = [f"**{t.title}**", ""]
    out.append("| " + " | ".join(heads) + " |")
    out.append("|" + "|".join("---" if c in t.printed_keys() else "---:" for c in cols) + "|")
    last_group = object()
    for r in t.rows:
        if t.group and r.get(t.group) != last_group:
            last_group = r.get(t.group)
            out.append("| " + " | ".join([f"*{last_group}*"] + [""] * (len(cols) - 1)) + " |")
        cells = [str(r.get(k, "")) for k in t.printed_keys()] + [t.cell(r, c) for c in t.values]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if t.notes:
        out.append("")
        out.extend(f"- {n}" for n in t.notes)
    return "\n".join(out) + "\n"


def to_csv(t: Table) -> str:
    cols = t.keys + t.values + [c for c in dict.fromkeys(t.suffix.values()) if c not in t.keys + t.values]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in t.rows:
        row = []
        for c in cols:
            v = r.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                row.append("")
            elif isinstance(v, float):
                row.append(repr(round(v, 6)))
            else:
                row.append(str(v))
        w.writerow(row)
    return buf.getvalue()


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
                "↓": r"$\downarrow$", "Δ": r"$\Delta$", "—": "--", "×": r"$\times$",
                "≥": r"$\geq$", "≤": r"$\leq$", "±": r"$\pm$"}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(s))


def to_latex(t: Table) -> str:
    keys = t.printed_keys()
    cols = keys + t.values
    spec = "l" * len(keys) + "r" * len(t.values)
    out = ["% Written by `use-repro report tables`; needs \\usepackage{booktabs}.",
           "\\begin{table}[t]", "\\centering", "\\small",
           f"\\caption{{{tex_escape(t.title)}}}", f"\\label{{tab:{t.name}}}",
           f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
           " & ".join(tex_escape(t.header(c)) for c in cols) + r" \\", "\\midrule"]
    last_group = object()
    for r in t.rows:
        if t.group and r.get(t.group) != last_group:
            last_group = r.get(t.group)
            out.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\textit{{{tex_escape(last_group)}}}}}" + r" \\")
        cells = [tex_escape(r.get(k, "")) for k in keys] + [tex_escape(t.cell(r, c)) for c in t.values]
        out.append(" & ".join(cells) + r" \\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if t.notes:
        out.append("\\par\\footnotesize " + " ".join(tex_escape(n) for n in t.notes))
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def write_table(t: Table, out_dir: str | Path) -> dict[str, Path]:
    """Write `<out_dir>/<name>.{md,csv,tex}` atomically; return the paths."""
    out_dir = Path(out_dir)
    paths = {ext: out_dir / f"{t.name}.{ext}" for ext in ("md", "csv", "tex")}
    write_text_atomic(paths["md"], to_markdown(t))
    write_text_atomic(paths["csv"], to_csv(t))
    write_text_atomic(paths["tex"], to_latex(t))
    return paths
