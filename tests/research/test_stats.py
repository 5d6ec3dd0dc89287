"""DSR, PSR and PBO against hand-worked cases (milliseconds)."""

from __future__ import annotations

import math
import statistics

import pytest

from bot.research.stats import deflated_sharpe, expected_max_sharpe, moments, pbo_cscv, psr, sharpe


def test_dsr_matches_the_papers_worked_example() -> None:
    # Bailey & López de Prado (2014), numerical example: N = 100 trials, the best annualised SR 2.5 over
    # T = 1250 daily observations (5 years of 250 days), annualised variance of the trials' SRs 0.5,
    # skewness -3, kurtosis 10. The paper finds SR0 ≈ 0.1132 (daily) and DSR ≈ 0.9004.
    sr_daily = 2.5 / math.sqrt(250)
    var_daily = 0.5 / 250
    assert expected_max_sharpe(100, var_daily) == pytest.approx(0.1132, abs=5e-5)
    d = deflated_sharpe(sr_daily, 1250, 100, var_daily, skew=-3.0, kurt=10.0)
    assert d["dsr"] == pytest.approx(0.9004, abs=1e-3)
    # by hand: SR = 2.5 / sqrt(250) = 0.158114, SR0 = sqrt(0.002) * (0.42278 * 2.32635 + 0.57722 * 2.68021)
    # = 0.113172, z = (0.158114 - 0.113172) * sqrt(1249) / sqrt(1 + 3 * 0.158114 + 9/4 * 0.025) = 1.2838
    assert d["sr0"] == pytest.approx(0.113172, abs=2e-6)
    assert d["dsr"] == pytest.approx(statistics.NormalDist().cdf(1.2838), abs=2e-5)


def test_psr_and_no_selection() -> None:
    assert psr(0.0, 0.0, 100) == pytest.approx(0.5)
    # normal returns: z = SR * sqrt(n - 1) / sqrt(1 + SR^2 / 2); SR 0.2, n 101 -> 2 / sqrt(1.02)
    assert psr(0.2, 0.0, 101) == pytest.approx(statistics.NormalDist().cdf(2 / math.sqrt(1.02)))
    # one trial: nothing was selected, the DSR is the PSR against 0
    assert deflated_sharpe(0.2, 101, 1, 0.01)["dsr"] == pytest.approx(psr(0.2, 0.0, 101))
    # more trials raise the bar
    assert expected_max_sharpe(1000, 0.01) > expected_max_sharpe(10, 0.01) > 0


def test_sharpe_and_moments_by_hand() -> None:
    r = [1.0, 2.0, 3.0, 6.0]  # mean 3, deviations -2 -1 0 3
    assert sharpe(r) == pytest.approx(3 / math.sqrt(14 / 3))
    g3, g4 = moments(r)  # m2 = 14/4, m3 = (-8 - 1 + 27)/4 = 4.5, m4 = (16 + 1 + 81)/4 = 24.5
    assert g3 == pytest.approx(4.5 / 3.5 ** 1.5) and g4 == pytest.approx(24.5 / 3.5 ** 2)
    assert moments([2.0, 2.0]) == (0.0, 3.0) and math.isnan(sharpe([1.0]))


def test_pbo_on_a_constructed_matrix() -> None:
    # 4 blocks (one row each), 2 trials: A = [3, 2, -1, -2.5], B = 0 throughout; performance = the mean.
    # IS blocks -> IS winner -> its OOS:  {1,2} A -> -1.75 worst;  {1,3} A -> -0.25 worst;
    # {1,4} A -> 0.5 best;  {2,3} A -> 0.25 best;  {2,4} B (A -0.25) -> A 1.0, B worst;
    # {3,4} B -> A 2.5, B worst. Overfit (IS winner at the OOS bottom) in 4 of 6: PBO = 2/3.
    m = [[3.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [-2.5, 0.0]]
    res = pbo_cscv(m, 4, metric=statistics.fmean)
    assert res["combinations"] == 6 and res["pbo"] == pytest.approx(4 / 6)
    # with N = 2 the winner's OOS rank is 1 or 2 of 2: ω = 1/3 or 2/3, λ = ±ln 2
    assert sorted(round(x, 6) for x in res["logits"]) == [round(-math.log(2), 6)] * 4 + [round(math.log(2), 6)] * 2


def test_pbo_zero_when_one_trial_dominates_and_one_when_it_reverses() -> None:
    # trial j earns j + small wiggle in every row: the IS best is always the OOS best (Sharpe metric)
    rows = [[j + 0.1 * ((i * 7 + j) % 3) for j in range(5)] for i in range(8)]
    assert pbo_cscv(rows, 4)["pbo"] == 0.0
    # A wins exactly where B loses and vice versa (mean metric): the IS winner is always the OOS loser
    rev = [[1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0]]
    # {1,2} A -> loses; {3,4} B -> loses; mixed halves tie IS (0 = 0): the first trial, A, whose OOS is 0 = B
    res = pbo_cscv(rev, 4, metric=statistics.fmean)
    assert res["pbo"] == 1.0  # ties in OOS put ω at 1/2, λ = 0, which counts as overfit (λ ≤ 0)


def test_pbo_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="even number of blocks"):
        pbo_cscv([[1.0, 2.0]] * 6, 3)
    with pytest.raises(ValueError, match="at least 2 trials"):
        pbo_cscv([[1.0]] * 4, 4)


def test_wilson_bootstrap_and_r2_by_hand() -> None:
    from bot.research.stats import bootstrap_ci, r_squared, wilson_ci

    # Wilson, 8 of 10 at 95 % (z = 1.95996): centre (0.8 + 0.19208) / 1.38415 = 0.71674,
    # half-width 1.95996 * sqrt(0.016 + 0.0096039) / 1.38415 = 0.22658 -> [0.4902, 0.9433]
    lo, hi = wilson_ci(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert wilson_ci(0, 0) is None
    # y = 2x + 1 exactly: R² 1; y independent of x by construction: R² 0
    assert r_squared([1, 2, 3, 4], [3, 5, 7, 9]) == pytest.approx(1.0)
    assert r_squared([1, -1, 1, -1], [1, 1, -1, -1]) == pytest.approx(0.0)
    # a constant sample: every resample has the same mean; a spread sample: the mean lies inside
    assert bootstrap_ci([2.0] * 5) == (2.0, 2.0)
    x = [float(i) for i in range(20)]
    lo, hi = bootstrap_ci(x, seed=1)
    assert lo < statistics.fmean(x) < hi and bootstrap_ci(x, seed=1) == (lo, hi)
