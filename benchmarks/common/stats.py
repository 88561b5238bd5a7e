r"""Summary statistics for repeated benchmark runs."""
import math
from typing import Dict, Sequence

import numpy as np
from scipy import stats as _stats

PAIRED_TESTS = ('t-test', 'wilcoxon')


def _array(values: Sequence[float], name: str = 'values') -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if out.size == 0:
        raise ValueError(f"'{name}' is empty")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"'{name}' holds non-finite numbers")
    return out


def mean_std(values: Sequence[float], ddof: int = 1) -> 'tuple[float, float]':
    r"""Mean and standard deviation. :obj:`ddof=1` (default) gives the sample
    standard deviation; the official Diff-ResNet code prints :obj:`ddof=0`.
    A single value has standard deviation :obj:`0`."""
    x = _array(values)
    std = float(np.std(x, ddof=ddof)) if x.size > ddof else 0.0
    return float(np.mean(x)), std


def confidence_interval(values: Sequence[float],
                        level: float = 0.95) -> 'tuple[float, float]':
    r"""Two-sided confidence interval of the mean from Student's
    t-distribution,

    .. math::
        \bar{x} \pm t_{(1 + \gamma) / 2,\, n - 1} \, \frac{s}{\sqrt{n}},

    with sample standard deviation :math:`s` (:obj:`ddof=1`) and level
    :math:`\gamma`. Treats the values as independent: pass one value per
    independent unit (e.g. the per-split means), not correlated runs. With a
    single value the interval is :obj:`(nan, nan)`."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"'level' must lie in (0, 1) (got {level})")
    x = _array(values)
    if x.size < 2:
        return math.nan, math.nan
    mean, std = mean_std(x, ddof=1)
    half = _stats.t.ppf((1.0 + level) / 2.0, x.size - 1) * std / math.sqrt(
        x.size)
    return mean - half, mean + half


def paired_test(a: Sequence[float], b: Sequence[float],
                test: str = 't-test') -> Dict[str, object]:
    r"""Two-sided paired test of :obj:`a` against :obj:`b` (same order, one
    pair per independent unit).

    Args:
        a (Sequence[float]): The first sample.
        b (Sequence[float]): The paired second sample.
        test (str, optional): :obj:`"t-test"` (paired Student t-test,
            :func:`scipy.stats.ttest_rel`) or :obj:`"wilcoxon"` (Wilcoxon
            signed-rank test, :func:`scipy.stats.wilcoxon`, zero differences
            dropped). (default: :obj:`"t-test"`)

    Returns:
        A dictionary with the :obj:`test` name, :obj:`n` pairs, the mean
        difference :obj:`mean_diff` (:math:`a - b`), the :obj:`statistic`, the
        :obj:`pvalue` and the number of pairs where :obj:`a` is larger
        (:obj:`wins`), equal (:obj:`ties`) and smaller (:obj:`losses`). The
        p-value is :obj:`nan` when the test is undefined (fewer than two
        pairs, all differences zero).
    """
    if test not in PAIRED_TESTS:
        raise ValueError(f"Unknown paired test '{test}' (choose from "
                         f"{', '.join(PAIRED_TESTS)})")
    x, y = _array(a, 'a'), _array(b, 'b')
    if x.shape != y.shape:
        raise ValueError(f"Paired samples differ in length ({x.size} and "
                         f"{y.size})")
    d = x - y
    out: Dict[str, object] = {
        'test': 'paired t-test' if test == 't-test' else
        'Wilcoxon signed-rank',
        'n': int(d.size),
        'mean_diff': float(d.mean()),
        'wins': int((d > 0).sum()),
        'ties': int((d == 0).sum()),
        'losses': int((d < 0).sum()),
        'statistic': math.nan,
        'pvalue': math.nan,
    }
    if d.size < 2 or np.all(d == 0):
        return out
    if test == 't-test':
        if np.all(d == d[0]):  # Zero variance: the t statistic is infinite.
            out['statistic'] = math.copysign(math.inf, d[0])
            out['pvalue'] = 0.0
            return out
        res = _stats.ttest_rel(x, y)
    else:
        res = _stats.wilcoxon(x, y, zero_method='wilcox')
    out['statistic'] = float(res.statistic)
    out['pvalue'] = float(res.pvalue)
    return out
