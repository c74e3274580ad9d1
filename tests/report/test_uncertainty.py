"""The report's intervals: the paired bootstrap, the verdict rule, the rank statistics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from use_repro.report import uncertainty as U
from use_repro.report.compare import BY_CONSTRUCTION, Claim, verdict_counts
from use_repro.report.scores import METRICS, Scores


def _pair(effect: float, n: int = 120, spread: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(3.0, 0.5, n)  # utterances differ a lot; the pairing removes that
    other = base + effect + rng.normal(0.0, spread, n)
    return U.Ratio.of_values(other), U.Ratio.of_values(base)


@pytest.mark.parametrize("effect, expected", [(0.4, U.HOLDS), (0.0, U.NOISE), (-0.4, U.OPPOSITE)])
def test_paired_bootstrap_separates_an_effect_from_noise(effect, expected):
    a, b = _pair(effect)
    iv = U.paired_difference(a, b)
    assert iv.verdict == expected
    assert iv.low <= iv.effect <= iv.high
    # the effect is measured within its interval's width
    assert abs(iv.effect - effect) < 0.1 and 0.03 < iv.half_width < 0.1


def test_pairing_narrows_the_interval():
    """The same data unpaired (each mean's own interval) would not separate 0.1; paired it does."""
    a, b = _pair(0.1, spread=0.1)
    assert U.paired_difference(a, b).verdict == U.HOLDS
    unpaired = U.mean_interval(a).half_width + U.mean_interval(b).half_width
    assert unpaired > 0.1


def test_the_interval_is_reproducible_bit_for_bit():
    a, b = _pair(0.05)
    first, second = U.paired_difference(a, b), U.paired_difference(a, b)
    assert (first.effect, first.low, first.high) == (second.effect, second.low, second.high)
    assert np.array_equal(U.resample_weights(50), U.resample_weights(50))
    assert U.resample_weights(50).sum(axis=1).tolist() == [50.0] * U.N_BOOT


def test_sign_and_offset_follow_the_papers_direction():
    a, b = _pair(-0.4)  # a lower than b: better on a lower-is-better metric
    assert U.paired_difference(a, b, sign=-1.0).verdict == U.HOLDS
    # "lowers PESQ by at most 0.5": a drop of 0.4 is within the tolerance
    assert U.paired_difference(a, b, offset=0.5).verdict == U.HOLDS
    assert U.paired_difference(a, b, offset=0.2).verdict == U.OPPOSITE


def test_pooled_ratio_is_the_challenges_cacc():
    r = U.Ratio(np.array([1.0, 3.0]), np.array([10.0, 10.0]), pooled=True)
    assert r.mean(np.ones((1, 2)))[0] == pytest.approx(80.0)
    missing = U.Ratio.of_values([1.0, np.nan, 3.0])
    assert missing.mean(np.ones((1, 3)))[0] == pytest.approx(2.0)


def test_spearman_against_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    x = np.array([50.0, 25.0, 10.0, 0.0, 0.0])
    y = rng.normal(size=(6, 5))
    got = U.spearman(x, y)
    want = [spearmanr(x, row).statistic for row in y]
    assert np.allclose(got, want)


def test_utterances_needed_scales_with_the_square():
    assert U.utterances_needed(0.2, 100, 0.1) == pytest.approx(400.0)


def test_by_construction_is_not_counted():
    claims = [Claim("T", "a", "", verdict="holds"), Claim("T", "b", "", verdict=BY_CONSTRUCTION),
              Claim("T", "c", "", verdict="within noise")]
    counts = verdict_counts(claims)
    assert BY_CONSTRUCTION not in counts and counts["holds"] == 1 and counts["within noise"] == 1
    assert sum(counts.values()) == 2


def _system(name: str, values: dict[str, float]):
    from use_repro.report.tables import System

    frame = pd.DataFrame({m: [values.get(m, np.nan)] * 3 for m in METRICS}, index=["u1", "u2", "u3"])
    return System(name, name.upper(), Scores(name, frame))


def test_table7_ranks_our_systems_among_themselves_by_hand():
    """A best everywhere; B second except on PESQ, where C beats it. NISQA and UTMOS are n/a
    (dropped for all). By hand: A 1; B (2 + (3+2+2+2+2)/5 + 2 + 2)/4 = 2.05; C 2.95."""
    from use_repro.report.tables import read_reported, table7

    base = {"DNSMOS": 3.0, "PESQ": 2.0, "ESTOI": 0.8, "SDR": 10.0, "MCD": 3.0, "LSD": 3.0,
            "SBERT": 0.9, "LPS": 0.8, "SpkSim": 0.8, "CAcc": 90.0}
    def worse(k):
        return {m: (v + k if m in ("MCD", "LSD") else v - 0.1 * k * (1 if v < 5 else 10)) for m, v in base.items()}
    b, c = worse(1), worse(2)
    b["PESQ"], c["PESQ"] = 1.7, 1.8
    t = table7(read_reported("table7"), [_system("a", base), _system("b", b), _system("c", c)], "test")
    ours = {r["team"]: r for r in t.rows if r["source"] == "reproduced"}
    assert ours["A (ours)"]["Overall"] == 1.0
    assert ours["B (ours)"]["Overall"] == pytest.approx(2.05)
    assert ours["C (ours)"]["Overall"] == pytest.approx(2.95)
    assert ours["B (ours)"]["PESQ_rank"] == 3 and ours["C (ours)"]["PESQ_rank"] == 2


def test_vectorised_overall_equals_the_ranking_code_on_the_papers_table7():
    from use_repro.metrics import registry
    from use_repro.metrics.ranking import overall_scores, rank_table
    from use_repro.report.tables import read_reported

    lb = read_reported("table7")
    metrics = [m for ms in registry.CATEGORIES.values() for m in ms if m in lb.columns]
    cat = {m: c for c, ms in registry.CATEGORIES.items() for m in ms}
    ref = rank_table(lb[["team"] + metrics]).set_index("team")["Overall_exact"]
    got = overall_scores(lb[metrics].to_numpy(float)[None], [registry.HIGHER_IS_BETTER[m] for m in metrics],
                         [cat[m] for m in metrics])[0]
    assert np.allclose(got, ref.loc[lb["team"]].to_numpy())
