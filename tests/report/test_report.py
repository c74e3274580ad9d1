"""Tables, figures, comparison and provenance on synthetic runs in the stages' contract formats."""
from __future__ import annotations

import subprocess
import json
import math

import numpy as np
import pandas as pd
import pytest

from use_repro.cli import main
from use_repro.report import layout
from use_repro.report.render import Table, to_csv, to_latex, to_markdown
from use_repro.report.scores import Backend, canonical, metric_header, read_backends, read_scores


def report(run, *args):
    return main(["report", *args[:1], "--config", str(run["cfg_path"]), "--results", str(run["results"]), *args[1:]])


def write_all_tables(run):
    out = str(layout.tables_dir(run["results"]))
    extra = {"table2": ["--test-meta", str(run["meta"])], "table4": ["--unseen-lang", str(run["unseen_lang"])],
             "datasize": ["--datasize", str(run["datasize"])]}
    for t in layout.TABLES:
        assert report(run, "tables", "--table", t, *extra.get(t, []), "--out-dir", out) == 0, t
    return layout.tables_dir(run["results"])


# --- scores ----------------------------------------------------------------------------------

def test_canonical_metric_names():
    assert canonical("SpeechBERTScore") == "SBERT" and canonical("dnsmos_ovrl") == "DNSMOS"
    assert canonical("CACC") == "CAcc" and canonical("error") is None


def test_scores_means_and_backends(synthetic_run):
    s = read_scores(layout.eval_csv(synthetic_run["results"], "shifted", "test", "early"))
    df = pd.read_csv(layout.eval_csv(synthetic_run["results"], "shifted", "test", "early"))
    assert s.mean("PESQ") == pytest.approx(df["PESQ"].mean())
    assert s.mean("SBERT") == pytest.approx(df["SBERT"].mean())
    assert math.isnan(s.mean("NISQA")) and s.na_reason("NISQA") == "provide weights/nisqa/nisqa.tar"
    assert s.mean("PESQ", ids=["utt0", "utt1"]) == pytest.approx(df["PESQ"][:2].mean())
    assert s.backends["SBERT"].tag == "whisper-tiny encoder" and s.backends["PESQ"].tag == ""
    assert s.backends["SBERT"].name == "whisper-tiny encoder 1.0"
    assert s.backends["DistillMOS"].tag == "distillmos" and s.mean("DistillMOS") > 0
    assert metric_header("SBERT", s.backends) == "SBERT [whisper-tiny encoder]"
    assert metric_header("MCD", s.backends) == "MCD ↓"


def test_pooled_cacc_when_counts_are_given(tmp_path):
    p = tmp_path / "x.csv"
    pd.DataFrame({"id": ["a", "b"], "CAcc": [50.0, 100.0], "CAcc_errors": [5, 0], "CAcc_chars": [10, 90]}).to_csv(p, index=False)
    s = read_scores(p)
    assert s.mean("CAcc") == pytest.approx(95.0)          # 1 - 5/100, not the mean 75
    assert s.mean("CAcc", ids=["a"]) == pytest.approx(50.0)


def test_na_reason_from_the_per_utterance_notes(tmp_path):
    p = tmp_path / "u.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "DNSMOS": [3.0, 3.1, 3.2], "CAcc": [np.nan] * 3,
                  "error": ["", "", ""],
                  "na": ["CAcc: language 'it': the ASR backend is English only"] * 2
                  + ["CAcc: language 'ru': the ASR backend is English only"]}).to_csv(p, index=False)
    s = read_scores(p)
    assert s.na_reason("CAcc") == ("language 'it': the ASR backend is English only; "
                                   "language 'ru': the ASR backend is English only")
    assert s.na_reason("DNSMOS") == "no utterance has a value"


def test_backends_of_several_systems_merge_without_repeats():
    from use_repro.report.scores import Scores, merge_backends

    a = Backend("Whisper tiny.en (not OWSM / Whisper large) 1.0", False, short="Whisper tiny.en")
    b = Backend("other 2", False, short="other")
    frame = pd.DataFrame()
    merged = merge_backends(Scores("x", frame, {"CAcc": a}), Scores("y", frame, {"CAcc": a}),
                            Scores("z", frame, {"CAcc": b}))
    assert merged["CAcc"].name == "Whisper tiny.en (not OWSM / Whisper large) 1.0 + other 2"
    assert merged["CAcc"].tag == "Whisper tiny.en + other"


def test_backend_json_shapes(tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"backends": {"DNSMOS": "DNSMOS P.835 (speechmos)", "UTMOS": "distillmos",
                                          "NISQA": None, "SpeechBERTScore": {"name": "whisper-tiny encoder", "paper": False}}}))
    b = read_backends(p)
    assert b["DNSMOS"].paper and not b["UTMOS"].paper and not b["SBERT"].paper
    assert b["NISQA"] == Backend("", False, "no backend available")


# --- rendering -------------------------------------------------------------------------------

def test_render_three_formats():
    t = Table(name="t", title="T & more_", keys=["system", "label"], values=["PESQ", "MCD"],
              shown_keys=["label"], headers={"MCD": "MCD ↓"},
              rows=[{"system": "a", "label": "A_1", "PESQ": 2.345, "MCD": float("nan")},
                    {"system": "b", "label": "B", "PESQ": None, "MCD": 3.0}], notes=["n/a: why"])
    md = to_markdown(t)
    assert "| A_1 | 2.35 | n/a |" in md and "| B | — | 3.00 |" in md and "- n/a: why" in md
    csv = to_csv(t).splitlines()
    assert csv[0] == "system,label,PESQ,MCD" and csv[1] == "a,A_1,2.345," and csv[2] == "b,B,,3.0"
    tex = to_latex(t)
    assert r"A\_1 & 2.35 & n/a \\" in tex and r"MCD $\downarrow$" in tex and r"T \& more\_" in tex


# --- tables ----------------------------------------------------------------------------------

def test_every_table_is_written_with_numbers(synthetic_run):
    tdir = write_all_tables(synthetic_run)
    for t in layout.TABLES:
        for ext in ("md", "csv", "tex"):
            text = (tdir / f"{t}.{ext}").read_text()
            assert any(ch.isdigit() for ch in text), (t, ext)


def test_table1_pairs_ours_with_reported_rows(synthetic_run):
    tdir = write_all_tables(synthetic_run)
    t1 = pd.read_csv(tdir / "table1.csv")
    order = list(zip(t1["system"], t1["source"]))
    assert order[:2] == [("noisy", "paper"), ("noisy", "reproduced")]
    i = order.index(("shifted_gan", "paper"))
    assert order[i + 1] == ("shifted_gan", "reproduced")
    assert len(t1) == 9 + 5
    ours = t1[(t1.system == "early") & (t1.source == "reproduced")].iloc[0]
    df = pd.read_csv(layout.eval_csv(synthetic_run["results"], "early", "test", "early"))
    assert ours["PESQ"] == pytest.approx(df["PESQ"].mean(), abs=1e-6) and ours["n"] == 6
    assert pd.isna(ours["NISQA"])
    md = (tdir / "table1.md").read_text()
    assert "SBERT [whisper-tiny encoder]" in md and "| DNSMOS |" in md
    assert "SBERT: whisper-tiny encoder 1.0" in md      # the full name and version in the notes
    assert "DistillMOS [distillmos]" in md and "DistillMOS is not one of the paper's metrics" in md
    assert "NISQA is n/a for all our systems: provide weights/nisqa/nisqa.tar" in md
    assert pd.isna(ours["UTMOS"]) and ours["DistillMOS"] > 0
    # Table 6 is referenced against anechoic speech: a different file, the paper's five metrics
    t6 = pd.read_csv(tdir / "table6.csv")
    assert list(t6.columns[4:]) == ["PESQ", "ESTOI", "SBERT", "LPS", "SpkSim"]
    assert "noisy" not in set(t6["system"])
    a = t6[(t6.system == "early") & (t6.source == "reproduced")]["PESQ"].iloc[0]
    assert a == pytest.approx(pd.read_csv(layout.eval_csv(synthetic_run["results"], "early", "test", "anechoic"))["PESQ"].mean(), abs=1e-6)


def test_table_notes_give_the_n_of_each_metric(synthetic_run):
    # CAcc and LPS cover English rows only: two German utterances have neither, in every system
    for csv_path in synthetic_run["results"].glob("*/eval/test_early.csv"):
        df = pd.read_csv(csv_path, dtype={"id": str, "na": object})
        de = df["id"].isin(["utt0", "utt5"])
        df.loc[de, ["CAcc", "LPS"]] = np.nan
        df.loc[de, "na"] = ("CAcc: language 'de': the ASR backend is English only; "
                            "LPS: language 'de': the phone recogniser is English only")
        df.to_csv(csv_path, index=False)
    tdir = write_all_tables(synthetic_run)
    md = (tdir / "table1.md").read_text()
    note = next(line for line in md.splitlines() if "n per metric" in line)
    assert "(every system of ours; Utts 6)" in note
    assert "DNSMOS 6, NISQA 0, UTMOS 0, PESQ 6" in note and "LPS 4, SpkSim 6, CAcc 4" in note
    assert "Fewer than Utts — LPS: language 'de': the phone recogniser is English only; " \
           "CAcc: language 'de': the ASR backend is English only." in note
    assert "LPS 4" in (tdir / "table7.md").read_text()
    t2 = (tdir / "table2.md").read_text()     # utt0 is one of the two 48 kHz utterances
    assert "48 kHz: n per metric (every system of ours; Utts 2)" in t2 and "CAcc 1" in t2
    t4 = (tdir / "table4.md").read_text()
    assert "Italian (it_it): n per metric (Original; Utts 3): DNSMOS 3, SpkSim —, CAcc 3." in t4


def test_table2_subsets_by_rate(synthetic_run):
    tdir = write_all_tables(synthetic_run)
    t2 = pd.read_csv(tdir / "table2.csv", dtype={"subset": str})
    ours = t2[t2.source == "reproduced"]
    assert set(ours["subset"]) == {"48k", "44.1k"}
    assert (ours["n"] == 2).all()              # utt0, utt1 at 48k; utt2, utt5 at 44.1k
    df = pd.read_csv(layout.eval_csv(synthetic_run["results"], "shifted_gan", "test", "early")).set_index("id")
    got = ours[(ours.subset == "44.1k") & (ours.system == "shifted_gan")]["DNSMOS"].iloc[0]
    assert got == pytest.approx(df.loc[["utt2", "utt5"], "DNSMOS"].mean(), abs=1e-6)


def test_table4_languages_and_original_spksim(synthetic_run):
    tdir = write_all_tables(synthetic_run)
    t4 = pd.read_csv(tdir / "table4.csv")
    ours = t4[t4.source == "reproduced"]
    assert set(ours["language"]) == {"it_it", "ru_ru"} and (ours["n"] == 3).all()
    assert ours[ours.system == "original"]["SpkSim"].isna().all()
    assert {"nl_nl", "ja_jp"} <= set(t4[t4.source == "paper"]["language"])


def test_table7_ranks_ours_among_themselves(synthetic_run):
    tdir = write_all_tables(synthetic_run)
    t7 = pd.read_csv(tdir / "table7.csv")
    paper, ours = t7[t7.source == "paper"].set_index("team"), t7[t7.source == "reproduced"].set_index("team")
    assert len(paper) == 19 and len(ours) == 5 and t7["Overall"].notna().all()
    assert "Noisy (ours)" in ours.index and list(ours["Overall"]) == sorted(ours["Overall"])
    # the paper's leaderboard is ranked among itself: its ranks are those printed in the paper
    from use_repro.report.tables import read_reported
    reported = read_reported("table7").set_index("team")
    for team in ("Bobbsun", "Our Early reflected + GAN", "noisy"):
        assert paper.loc[team, "PESQ_rank"] == reported.loc[team, "PESQ_rank"]
        assert paper.loc[team, "Overall"] == pytest.approx(reported.loc[team, "Overall"], abs=1e-3)
    # NISQA is n/a for our systems: left out of our ranking, not of the paper's
    assert ours["NISQA_rank"].isna().all() and paper["NISQA_rank"].notna().all()
    assert "Left out of our ranking (n/a for some of our systems): NISQA, UTMOS" in (tdir / "table7.md").read_text()


def test_datasize_table(synthetic_run):
    tdir = write_all_tables(synthetic_run)
    ds = pd.read_csv(tdir / "datasize.csv")
    assert list(ds["threshold"]) == ["vq050", "vq065", "vq072"]
    assert list(ds["kept_pct"].round(1)) == [100.0, 99.5, 25.0]
    assert list(ds["paper_hours"]) == [2518, 2506, 629]


# --- compare ---------------------------------------------------------------------------------

def compare(run):
    write_all_tables(run)
    out = layout.tables_dir(run["results"])
    assert report(run, "compare", "--test-meta", str(run["meta"]), "--unseen-lang", str(run["unseen_lang"]),
                  "--out-dir", str(out)) == 0
    return pd.read_csv(out / "compare.csv", keep_default_na=False, na_values=[""]), (out / "compare.md").read_text()


def test_compare_claims_hold_on_a_run_made_to_agree(synthetic_run):
    df, md = compare(synthetic_run)
    claims = df[df.kind == "claim"].set_index("claim")
    assert claims.loc["Shifted anechoic target beats early-reflected on DNSMOS", "verdict"] == "holds"
    assert claims.loc["Shifted anechoic target beats early-reflected on NISQA", "verdict"] == "n/a"
    assert claims.loc["Shifted anechoic target beats early-reflected on UTMOS", "verdict"] == "n/a"
    stand_in = [c for c in claims.index if "DistillMOS" in c]
    assert len(stand_in) == 1 and claims.loc[stand_in[0], "verdict"] == "holds"
    assert "NISQA" in claims.loc["Shifted anechoic target beats early-reflected on NISQA", "note"]
    assert claims.loc["Filtering at the middle VQScore threshold beats no filtering", "verdict"] == "holds"
    assert claims.loc["The unshifted anechoic target is the worst", "verdict"] == "holds"
    assert claims.loc["Two-stage beats regression + adversarial fine-tune on PESQ", "verdict"] == "holds"
    assert claims.loc["GAN corrections align with the regression error (shifted_gan)", "verdict"] == "holds"
    assert claims.loc["GAN correction improves the overall rank (early)", "verdict"] in ("holds", "within noise")
    assert not (claims["verdict"] == "opposite").any()
    # every judged claim carries its interval, signed towards the paper
    # (a claim on several metrics carries one interval per metric, in its `claim part` rows)
    parts = df[df.kind == "claim part"]
    judged = claims[claims.verdict.isin(["holds", "within noise", "opposite"])]
    single = judged[~judged.index.isin(parts["claim"])]
    assert len(single) > 10 and single[["effect", "ci_low", "ci_high"]].notna().all().all()
    assert (judged["rule"] != "").all() and parts[["effect", "ci_low", "ci_high"]].notna().all().all()
    assert (single.loc[single.verdict == "holds", "ci_low"] > 0).all()
    assert (parts.loc[parts.verdict == "holds", "ci_low"] > 0).all()
    # Section 3.4 is true by construction (thresholds chosen as the paper's quantiles): not counted
    assert claims.loc["The middle threshold keeps almost all data, the strictest about a quarter",
                      "verdict"] == "by construction"
    assert "by construction, not counted" in md
    # a language the paper has no row for is n/a, with its own numbers
    ru = claims.loc["Proposed raises DNSMOS over the original recordings (ru)"]
    assert ru["verdict"] == "n/a" and "no paper row" in ru["note"] and ru["ours"] != ""
    it = claims.loc["Proposed raises DNSMOS over the original recordings (it)"]
    assert it["verdict"] == "holds" and 'language it_it), rows "Original" → "Proposed": DNSMOS 3.12 → 3.20' in it["paper"]
    headline = (layout.tables_dir(synthetic_run["results"]) / "headline.md").read_text()
    assert "| **all** |" in headline and "paper 3.25" in headline
    # side by side: ours, paper, delta
    v = df[(df.kind == "value") & (df.table == "table1") & (df.system == "shifted") & (df.metric == "DNSMOS")].iloc[0]
    assert v["reported"] == 3.25 and v["delta"] == pytest.approx(v["reproduced"] - 3.25)
    assert "SBERT | whisper-tiny encoder 1.0 | no" in md and "provide weights/nisqa/nisqa.tar" in md
    assert "test utterances: 6" in md


def test_compare_reports_failed_claims(flipped_run):
    df, _ = compare(flipped_run)
    claims = df[df.kind == "claim"].set_index("claim")
    for m in ("DNSMOS", "CAcc"):
        c = claims.loc[f"Shifted anechoic target beats early-reflected on {m}"]
        assert c["verdict"] == "opposite" and c["ci_high"] < 0


def test_compare_without_optional_inputs_says_why(synthetic_run):
    layout.residual_correlation(synthetic_run["results"], "shifted_gan").unlink()
    layout.valid_scores(synthetic_run["results"], "shifted_finetune").unlink()
    df, _ = compare(synthetic_run)
    claims = df[df.kind == "claim"].set_index("claim")
    c = claims.loc["Two-stage beats regression + adversarial fine-tune on Phase loss"]
    assert c["verdict"] == "n/a" and "shifted_finetune" in c["note"]


# --- figures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("figure", layout.FIGURES)
def test_every_figure_is_drawn(synthetic_run, figure):
    out = synthetic_run["figures"] / f"{figure}.png"
    assert report(synthetic_run, "figure", figure, "--test-meta", str(synthetic_run["meta"]), "--out", str(out)) == 0
    png, pdf = out, out.with_suffix(".pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size < 2_000_000   # spectrograms are rasterised inside the PDF


def _spectrogram_info(run, figure, monkeypatch, tmp_path):
    from use_repro.report import figures as F

    seen = {}
    original = F.spectrogram_grid

    def spy(*a, **k):
        seen["info"] = original(*a, **k)
        return seen["info"]
    monkeypatch.setattr(F, "spectrogram_grid", spy)
    assert report(run, "figure", figure, "--test-meta", str(run["meta"]), "--out", str(tmp_path / figure)) == 0
    return seen["info"]


def test_spectrograms_have_db_colour_bars_and_the_papers_boxes(synthetic_run, monkeypatch, tmp_path):
    from use_repro.report.figures import DB_RANGE

    boxes = lambda info, label: {(c, b) for _, c, lab, b in info["boxes"] if lab == label}  # noqa: E731
    f5 = _spectrogram_info(synthetic_run, "fig5", monkeypatch, tmp_path)
    assert len(f5["colorbars"]) == 2 and f5["db_range"] == DB_RANGE
    assert "dB re full-scale sine (fixed -100 to -10)" in f5["colorbars"][0] and "±20" in f5["colorbars"][1]
    # utt2 is bandwidth-limited to 8 kHz sampling: the green box is everything above 4 kHz, on every panel
    band = boxes(f5, "band the input lacks")
    assert {c for c, _ in band} == {0, 1, 2, 3}
    assert all(b[2] == 4000 and b[3] > 20000 for _, b in band)
    # the GAN's correction (a noise burst at 0.5-0.8 s in the synthetic run) is inside the dashed box
    gan = boxes(f5, "largest GAN change")
    assert {c for c, _ in gan} == {1, 2, 4}
    assert all(b[0] <= 0.55 and b[1] >= 0.75 for _, b in gan)
    # Figure 6: the noisy input's burst at 0.1-0.4 s is the strongest noise
    f6 = _spectrogram_info(synthetic_run, "fig6", monkeypatch, tmp_path)
    noise = boxes(f6, "strongest noise")
    assert noise and all(b[0] <= 0.15 and b[1] >= 0.35 for _, b in noise)
    f8 = _spectrogram_info(synthetic_run, "fig8", monkeypatch, tmp_path)
    assert len(f8["colorbars"]) == 1 and f8["boxes"] == []


def test_a_box_rule_that_finds_nothing_draws_nothing(tmp_path):
    from use_repro.audio.io import write_audio
    from use_repro.report.figures import spectrogram_grid

    x = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    write_audio(tmp_path / "a.wav", x, 16000)
    info = spectrogram_grid([[("a", tmp_path / "a.wav"), ("b", tmp_path / "a.wav")]], "t", tmp_path / "f", diff=[(0, 1, 0)],
                            regions=[{"row": 0, "on": [0, 1, "diff"], "label": "change", "largest": ("abs", 1, 0)}])
    assert info["boxes"] == [] and info["skipped"] == ["change"] and len(info["colorbars"]) == 2


def test_examples_follow_the_papers_figures(synthetic_run):
    from use_repro.data.manifest import read_meta
    from use_repro.report.figures import choose_examples

    meta = read_meta(synthetic_run["meta"])
    assert choose_examples(meta, "bandwidth")[0]["id"] == "utt2"
    assert choose_examples(meta, "noise")[0]["id"] == "utt4"      # lowest SNR, no reverb or bandwidth limit
    assert [r["id"] for r in choose_examples(meta, "reverb", 2)] == ["utt1", "utt3"]


def test_learning_curve_falls_back_to_another_mos(tmp_path):
    from use_repro.report.figures import learning_curves

    df = pd.DataFrame({"step": [0, 1], "metric": ["distillmos", "distillmos"], "value": [1.0, 2.0]})
    drawn = learning_curves({"a": df}, "UTMOS", "t", tmp_path / "f.png")
    assert drawn == {"a": "distillmos"} and (tmp_path / "f.pdf").exists()


def _groups(run, figure):
    from use_repro.config import load_config
    from use_repro.report.cli import _curve_groups
    from use_repro.report.experiments import experiments

    cfg = load_config(str(run["cfg_path"]))
    thresholds = cfg["vqscore"]["thresholds"] if figure == "fig3a" else None
    return _curve_groups(thresholds, run["results"], experiments(cfg), cfg["report"][figure], figure)


def test_fig3a_names_curves_by_threshold_and_fig3b_by_target(synthetic_run):
    runs, _ = _groups(synthetic_run, "fig3a")
    assert list(runs) == ["VQScore 0.50 (no filtering)", "VQScore 0.65", "VQScore 0.72"]
    runs, _ = _groups(synthetic_run, "fig3b")
    assert list(runs) == ["Anechoic s[n] (unshifted)", "Early reflected (50 ms)", "Early reflected (25 ms)",
                          "Shifted anechoic (0 ms)"]


def test_threshold_and_target_labels():
    from use_repro.report.figures import target_label, threshold_label

    assert threshold_label("vq065") == "VQScore 0.65"
    assert threshold_label("vq050", [{"name": "vq050", "score": 0.5, "keep": 1.0}]) == "VQScore 0.50 (no filtering)"
    assert threshold_label("strict", [{"name": "strict", "score": 0.8}]) == "VQScore 0.80"
    assert threshold_label("none") == "No VQScore filtering"
    assert target_label("early10ms") == "Early reflected (10 ms)" and target_label("shifted").startswith("Shifted")


def test_a_second_seed_is_drawn_as_one_curve_with_a_band(seeded_run, tmp_path):
    from use_repro.report.figures import learning_curves

    for figure in ("fig3a", "fig3b"):
        runs, valid = _groups(seeded_run, figure)
        shifted = "VQScore 0.65" if figure == "fig3a" else "Shifted anechoic (0 ms)"
        assert list(runs[shifted]) == ["shifted", "shifted_seed1"]     # listed or not, the twin joins
        assert not any("seed 1" in k for k in runs)
        drawn = learning_curves(runs, "UTMOS", "t", tmp_path / f"{figure}.png", valid=valid)
        assert drawn.seeds == {shifted: ["shifted", "shifted_seed1"]}
        assert f"{shifted}, mean of 2 seeds" in drawn.legend
        assert any("seeds' range" in t for t in drawn.legend)
        # every curve has its 95 % band over the 8 validation utterances, and the legend says how
        assert set(drawn.intervals) == set(runs) and set(drawn.intervals.values()) == {8}
        assert any("mean ± 1.96·SE" in t and "n = 8" in t for t in drawn.legend)


def test_interval_band_is_mean_plus_minus_1_96_standard_errors():
    from use_repro.report.figures import interval_band

    v = pd.DataFrame({"step": [0] * 4 + [10] * 4, "utt": list("abcd") * 2, "metric": "PESQ",
                      "value": [1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0]})
    steps, lo, hi, n = interval_band(v, "PESQ")
    half = 1.96 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert list(steps) == [0, 10] and n == 4
    assert np.allclose(lo, [2.5 - half, 2.0]) and np.allclose(hi, [2.5 + half, 2.0])
    assert interval_band(v, "DNSMOS") is None


def test_fig9_marks_every_validation_point(synthetic_run, tmp_path):
    from use_repro.report.figures import fig9, read_curves, read_valid_scores

    res = synthetic_run["results"]
    runs = [read_curves(layout.curves(res, e)) for e in ("shifted_gan", "shifted_finetune")]
    valid = tuple(read_valid_scores(layout.valid_scores(res, e)) for e in ("shifted_gan", "shifted_finetune"))
    drawn = fig9(*runs, tmp_path / "fig9.png", valid=valid)
    assert drawn.points == {"Two-stage GAN correction": 5, "Regression + adversarial fine-tune": 5}
    assert set(drawn.intervals) == {"(a) Magnitude loss", "(b) Phase loss", "(c) Time loss", "(d) PESQ"}
    assert "Two-stage GAN correction (5 validation points)" in drawn.legend


# --- provenance ------------------------------------------------------------------------------

def test_provenance_from_snakemake_job_records(synthetic_run, tmp_path):
    import base64
    import time

    meta = tmp_path / "metadata"
    meta.mkdir()
    now = time.time()
    res = str(synthetic_run["results"])
    jobs = [("corpus", f"{res}/corpus/summary.csv", 10.0, 0, 0.0),
            ("corpus", f"{res}/corpus/text", 10.0, 0, 0.001),        # a second output of that job
            ("train", f"{res}/shifted/final.pt", 20.0, 1, 1.0),
            ("train", f"{res}/shifted/curves.csv", 20.0, 1, 1.002),
            ("train", f"{res}/early/final.pt", 30.0, 2, 2.0),
            ("other", "/elsewhere/x", 99.0, 3, 3.0)]
    for rule, path, dur, job, t in jobs:
        name = base64.urlsafe_b64encode(path.encode()).decode()
        (meta / name).write_text(json.dumps({"rule": rule, "starttime": now + t, "endtime": now + t + dur,
                                             "job_hash": job, "incomplete": False}))
    out = synthetic_run["results"] / "provenance.md"
    assert report(synthetic_run, "provenance", "--metadata", str(meta), "--out", str(out)) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    stages = {s["stage"]: s for s in data["stages"]}
    assert set(stages) == {"corpus", "train"} and stages["train"]["jobs"] == 2
    assert stages["corpus"]["jobs"] == 1 and len(data["jobs"]) == 3
    assert stages["train"]["job_seconds"] == pytest.approx(50.0, abs=0.1)
    assert data["backends"]["SBERT"]["name"] == "whisper-tiny encoder 1.0" and data["commit"]
    assert data["backends"]["UTMOS"]["reason"].startswith("provide weights/utmos")
    text = out.read_text()
    assert "## Wall time per stage" in text and "cpu_cores_visible" in text


def test_provenance_dirty_flag_ignores_the_runs_own_outputs(tmp_path):
    from use_repro.report.provenance import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "summary.csv").write_text("a\n1\n")
    git("add", "-A")
    git("commit", "-qm", "c")
    assert git_commit(tmp_path)["dirty"] == "no"
    (tmp_path / "results" / "summary.csv").write_text("a\n2\n")      # a tracked output rewritten
    assert git_commit(tmp_path)["dirty"] == "no"
    (tmp_path / "code.py").write_text("x = 2\n")                       # the code itself changed
    assert git_commit(tmp_path)["dirty"] == "yes"


def test_the_report_reads_the_metric_stage_s_one_list_of_names():
    from use_repro.metrics import registry
    from use_repro.report import scores

    assert scores.METRICS is registry.RANKED_METRICS
    assert set(scores.EXTRA_METRICS) <= set(registry.EXTRA_METRICS)
    for m in scores.METRICS + scores.EXTRA_METRICS:  # every column the tables print has its aliases
        assert scores.canonical(m) == m
