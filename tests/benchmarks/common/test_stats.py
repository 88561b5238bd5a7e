import math

import numpy as np
import pytest

from benchmarks.common import (
    confidence_interval,
    mean_std,
    paired_test,
)


def test_mean_std():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert math.isclose(std, math.sqrt(5 / 3))
    assert math.isclose(mean_std([1.0, 2.0, 3.0, 4.0], ddof=0)[1],
                        math.sqrt(1.25))
    assert mean_std([3.0]) == (3.0, 0.0)
    with pytest.raises(ValueError, match='empty'):
        mean_std([])


def test_confidence_interval():
    # n = 4, mean 2.5, s = sqrt(5/3), t_{0.975, 3} = 3.182446305284263.
    lo, hi = confidence_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert math.isclose(lo, 2.5 - half) and math.isclose(hi, 2.5 + half)
    lo, hi = confidence_interval([1.0, 2.0, 3.0, 4.0], level=0.9)
    assert math.isclose(hi - 2.5, 2.353363434801823 * math.sqrt(5 / 3) / 2)
    assert all(math.isnan(v) for v in confidence_interval([1.0]))
    with pytest.raises(ValueError, match='level'):
        confidence_interval([1.0, 2.0], level=1.5)


def test_paired_t_test():
    a = [0.82, 0.80, 0.85, 0.83, 0.81]
    b = [0.80, 0.79, 0.82, 0.83, 0.78]
    out = paired_test(a, b)
    d = np.array(a) - np.array(b)  # [.02, .01, .03, 0, .03]
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert out['test'] == 'paired t-test' and out['n'] == 5
    assert math.isclose(out['statistic'], t)
    assert math.isclose(out['mean_diff'], d.mean())
    assert (out['wins'], out['ties'], out['losses']) == (4, 1, 0)
    # t = 3.0870 with 4 degrees of freedom: two-sided p = 0.03668.
    assert math.isclose(t, 3.0870, abs_tol=1e-4)
    assert math.isclose(out['pvalue'], 0.03668, abs_tol=1e-5)


def test_wilcoxon():
    a = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    b = [4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    out = paired_test(a, b, test='wilcoxon')
    assert out['test'] == 'Wilcoxon signed-rank'
    # All 6 differences positive: exact two-sided p = 2 / 2^6.
    assert math.isclose(out['pvalue'], 2 / 64)
    assert out['statistic'] == 0.0
    same = paired_test([1.0, 2.0], [1.0, 2.0], test='wilcoxon')
    assert math.isnan(same['pvalue']) and same['ties'] == 2
    with pytest.raises(ValueError, match='Unknown paired test'):
        paired_test(a, b, test='z')
    with pytest.raises(ValueError, match='differ in length'):
        paired_test(a, b[:3])
