"""The statistics of `scalper research validate`, each implemented once, pure Python (no numpy needed).

Sharpe ratio (per observation, not annualised):  SR = mean(r) / sd(r), sd with n - 1.

Probabilistic Sharpe ratio (Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", J. of Risk
2012; eq. used in the DSR paper): the probability that the true SR exceeds SR*, given n observations
with skewness g3 and kurtosis g4 (not excess: 3 for a normal):

    PSR(SR*) = Φ( (SR − SR*) · sqrt(n − 1) / sqrt(1 − g3·SR + (g4 − 1)/4 · SR²) )

Deflated Sharpe ratio (Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection
Bias, Backtest Overfitting and Non-Normality", J. of Portfolio Management 40(5), 2014): the PSR against
the Sharpe ratio the best of N trials is expected to reach by luck alone, when the trials' Sharpe ratios
have variance V and every true SR is zero (γ = Euler–Mascheroni constant, e = Euler's number):

    SR0 = sqrt(V) · ( (1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)) )
    DSR = PSR(SR0)

Probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey, Borwein,
López de Prado & Zhu, "The Probability of Backtest Overfitting", J. of Computational Finance 20(4),
2017; SSRN 2015): a T×N matrix of returns (rows in time, one column per trial) is cut into S equal
row blocks (S even). For each of the C(S, S/2) ways to pick half of the blocks as in-sample (IS) — the
rest, in the same time order, is out-of-sample (OOS) —, take the trial n* with the best IS performance,
its OOS rank r among the N trials (1 = worst), ω = r / (N + 1) and the logit λ = ln(ω / (1 − ω)).
PBO = the share of combinations with λ ≤ 0: how often the IS winner is at or below the OOS median.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

__all__ = ["EULER_GAMMA", "deflated_sharpe", "expected_max_sharpe", "moments", "pbo_cscv", "psr", "sharpe"]

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(r: Sequence[float]) -> float:
    """mean / sd (sd with n − 1). A constant series: 0 when its mean is 0, else ±inf. Fewer than 2: nan."""
    if len(r) < 2:
        return math.nan
    m, sd = statistics.fmean(r), statistics.stdev(r)
    if sd == 0:
        return 0.0 if m == 0 else math.copysign(math.inf, m)
    return m / sd


def moments(r: Sequence[float]) -> tuple[float, float]:
    """(skewness g3, kurtosis g4) from the central moments m_k = mean((r − mean)^k): g3 = m3 / m2^1.5,
    g4 = m4 / m2² (not excess). A constant series: (0, 3), the normal's."""
    m = statistics.fmean(r)
    m2 = statistics.fmean((x - m) ** 2 for x in r)
    if m2 == 0:
        return 0.0, 3.0
    m3 = statistics.fmean((x - m) ** 3 for x in r)
    m4 = statistics.fmean((x - m) ** 4 for x in r)
    return m3 / m2 ** 1.5, m4 / m2 ** 2


def psr(sr: float, sr_star: float, n: int, skew: float = 0.0, kurt: float = 3.0) -> float:
    """Probabilistic Sharpe ratio (formula above). n observations of the same frequency as sr."""
    if n < 2 or not math.isfinite(sr):
        return math.nan
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if var <= 0:
        return math.nan
    return _N.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials: int, var_sr: float) -> float:
    """SR0: the expected best Sharpe ratio of n_trials independent trials whose true SR is 0 (above).
    One trial: no selection, 0."""
    if n_trials < 2 or var_sr <= 0:
        return 0.0
    return math.sqrt(var_sr) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials)
                                + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e)))


def deflated_sharpe(sr: float, n_obs: int, n_trials: int, var_sr: float, skew: float = 0.0,
                    kurt: float = 3.0) -> dict[str, float]:
    """DSR = PSR(SR0): the probability that the chosen SR beats what the best of n_trials finds by luck."""
    sr0 = expected_max_sharpe(n_trials, var_sr)
    return {"dsr": psr(sr, sr0, n_obs, skew, kurt), "sr": sr, "sr0": sr0, "n_obs": n_obs,
            "n_trials": n_trials, "var_sr": var_sr, "skew": skew, "kurt": kurt}


def _rank(values: Sequence[float], i: int) -> float:
    """1-based ascending rank of values[i], ties sharing their mean rank."""
    v = values[i]
    below = sum(1 for x in values if x < v)
    ties = sum(1 for x in values if x == v)
    return below + (ties + 1) / 2


def pbo_cscv(matrix: Sequence[Sequence[float]], n_blocks: int,
             metric: Callable[[Sequence[float]], float] = sharpe) -> dict[str, Any]:
    """PBO by CSCV (formula above). matrix: T rows (time order) × N columns (trials); T a multiple of
    n_blocks, n_blocks even. A metric that is nan counts as the worst. Returns {pbo, logits, combinations}."""
    t = len(matrix)
    n = len(matrix[0]) if t else 0
    if n_blocks < 2 or n_blocks % 2 or t == 0 or t % n_blocks or n < 2:
        raise ValueError(f"CSCV needs an even number of blocks (got {n_blocks}) dividing the {t} rows, "
                         f"and at least 2 trials (got {n})")
    size = t // n_blocks
    blocks = [list(range(b * size, (b + 1) * size)) for b in range(n_blocks)]
    cols = [[float(matrix[row][j]) for row in range(t)] for j in range(n)]

    def perf(rows: list[int]) -> list[float]:
        out = []
        for c in cols:
            v = metric([c[r] for r in rows])
            out.append(-math.inf if math.isnan(v) else v)
        return out

    logits = []
    for train in itertools.combinations(range(n_blocks), n_blocks // 2):
        test = [b for b in range(n_blocks) if b not in train]
        is_perf = perf([r for b in train for r in blocks[b]])
        oos_perf = perf([r for b in test for r in blocks[b]])
        best = max(range(n), key=lambda j: (is_perf[j], -j))  # ties: the first trial
        w = _rank(oos_perf, best) / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return {"pbo": sum(1 for x in logits if x <= 0) / len(logits), "logits": logits,
            "combinations": len(logits), "blocks": n_blocks, "trials": n}


def bootstrap_ci(x: Sequence[float], stat: Callable[[Sequence[float]], float] = statistics.fmean,
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of stat(x) (Efron & Tibshirani, "An Introduction to the Bootstrap",
    1993, ch. 13): resample x with replacement n_boot times; the (1 − level)/2 and (1 + level)/2
    quantiles of the resampled statistic. Seeded: the same input gives the same interval. None below 2."""
    import random

    if len(x) < 2:
        return None
    rng = random.Random(seed)
    n = len(x)
    vals = sorted(stat([x[rng.randrange(n)] for _ in range(n)]) for _ in range(n_boot))
    lo = vals[int((1 - level) / 2 * (n_boot - 1))]
    hi = vals[int((1 + level) / 2 * (n_boot - 1) + 0.5)]
    return lo, hi


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion k/n (Wilson 1927): centre (p + z²/2n)/(1 + z²/n),
    half-width z·sqrt(p(1−p)/n + z²/4n²)/(1 + z²/n)."""
    if n <= 0:
        return None
    z = _N.inv_cdf(1 - (1 - level) / 2)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def r_squared(x: Sequence[float], y: Sequence[float]) -> float | None:
    """R² of the least-squares line y ~ a + b·x (= the squared Pearson correlation). None if undefined."""
    if len(x) < 3:
        return None
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy * sxy / (sxx * syy)


__all__ += ["bootstrap_ci", "r_squared", "wilson_ci"]
