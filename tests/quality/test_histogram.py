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
