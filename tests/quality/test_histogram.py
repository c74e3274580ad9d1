import numpy as np

from use_repro.quality.histogram import figure2, figure7, order_sources


def _scores():
    rng = np.random.default_rng(0)
    return {"crowd": rng.normal(0.70, 0.05, 80), "tts": rng.normal(0.85, 0.02, 40),
            "asterisk": rng.normal(0.80, 0.03, 60), "codec2": [0.75, 0.76, 0.74]}


def test_sources_ordered_by_median_after_the_given_order():
    assert order_sources(_scores()) == ["crowd", "codec2", "asterisk", "tts"]
    assert order_sources(_scores(), ["tts", "nope"]) == ["tts", "crowd", "codec2", "asterisk"]


def test_figures_are_written_as_png_and_pdf(tmp_path):
    paths2 = figure2(_scores(), tmp_path / "fig2.png")
    paths7 = figure7(_scores(), tmp_path / "sub" / "fig7.png")
    for p in paths2 + paths7:
        assert p.exists() and p.stat().st_size > 1000
    assert [p.suffix for p in paths2] == [".png", ".pdf"]
    assert (tmp_path / "fig2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "sub" / "fig7.pdf").read_bytes()[:5] == b"%PDF-"
    # no temp files left behind
    assert sorted(x.name for x in tmp_path.iterdir()) == ["fig2.pdf", "fig2.png", "sub"]


def test_single_source_and_constant_scores_still_draw(tmp_path):
    paths = figure7({"only": [0.8, 0.8, 0.8]}, tmp_path / "f.png")
    assert all(p.exists() for p in paths)


def test_the_same_scores_give_byte_identical_files(tmp_path):
    # a PDF's creation date would make two runs of the same data differ (issue 12)
    a = figure2(_scores(), tmp_path / "a" / "fig2.png")
    b = figure2(_scores(), tmp_path / "b" / "fig2.png")
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert b"CreationDate" not in a[1].read_bytes()


def test_threshold_lines_are_drawn_and_labelled(tmp_path):
    from use_repro.quality.histogram import thresholds_from_datasize

    ds = tmp_path / "datasize.csv"
    ds.write_text("threshold,mode,value,keep,utterances\nvq050,keep,0.6,1.0,183\nvq065,keep,0.6,0.995,183\n"
                  "vq072,keep,0.8,0.25,40\n")
    th = thresholds_from_datasize(ds)
    assert th == [("vq050", 0.6, "keeps 100 %"), ("vq065", 0.6, "keeps 99.5 %"), ("vq072", 0.8, "keeps 25 %")]
    for fig in (figure2, figure7):
        drawn = fig(_scores(), tmp_path / f"{fig.__name__}.png", thresholds=th)
        # two thresholds that cut at the same score share one line
        assert drawn.lines == ["threshold vq050 (keeps 100 %), vq065 (keeps 99.5 %): 0.600",
                               "threshold vq072 (keeps 25 %): 0.800"], fig.__name__
    score_mode = [("vq065", 0.65, "")]
    assert figure2(_scores(), tmp_path / "s.png", thresholds=score_mode).lines == ["threshold vq065: 0.650"]
    assert figure2(_scores(), tmp_path / "none.png").lines == []


def test_a_source_of_fewer_than_ten_utterances_is_drawn_as_points(tmp_path):
    for fig in (figure2, figure7):
        drawn = fig(_scores(), tmp_path / f"{fig.__name__}.png")
        assert drawn.points == ["codec2"], fig.__name__
        assert sorted(drawn.histograms) == ["asterisk", "crowd", "tts"]


def test_the_cli_draws_the_filters_cuts(tmp_path, monkeypatch):
    from use_repro.cli import main
    from use_repro.quality import histogram

    seen = {}
    for name in ("figure2", "figure7"):
        original = getattr(histogram, name)
        monkeypatch.setattr(histogram, name, lambda *a, _f=original, _n=name, **k: seen.setdefault(_n, _f(*a, **k)))

    rows = [f"u{i}\t{src}\t{v:.4f}\t1.0" for i, (src, v) in
            enumerate([("a", 0.7 + 0.01 * k) for k in range(12)] + [("b", 0.75), ("b", 0.76)])]
    scores = tmp_path / "vqscore.tsv"
    scores.write_text("uid\tsource\tscore\tduration\n" + "\n".join(rows) + "\n")
    ds = tmp_path / "datasize.csv"
    ds.write_text("threshold,mode,value,keep\nvq050,score,0.5,\nvq072,score,0.72,\n")
    assert main(["vqscore", "histogram", "--scores", str(scores), "--datasize", str(ds),
                 "--fig2", str(tmp_path / "f2.png"), "--fig7", str(tmp_path / "f7.png")]) == 0
    assert (tmp_path / "f2.pdf").exists() and (tmp_path / "f7.pdf").exists()
    for name in ("figure2", "figure7"):
        assert seen[name].lines == ["threshold vq050: 0.500", "threshold vq072: 0.720"]
        assert seen[name].points == ["b"] and seen[name].histograms == ["a"]
