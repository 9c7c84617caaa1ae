"""pynima.evaluation.metrics against hand computations on constructed data: the values a paper's table would quote."""

import math
from itertools import combinations

import numpy as np
import pytest

from pynima.evaluation.metrics import evaluate_scores, point_metrics, within_reference

# the same six images scored by hand: no ties, so SRCC has its closed form
PRED = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
TRUE = np.array([2.0, 1.0, 4.0, 3.0, 6.0, 5.0])


def hand_srcc(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman without ties: 1 - 6 sum(d^2) / (n (n^2 - 1)) on the ranks."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    n = len(x)
    return 1 - 6 * float(np.sum((rx - ry) ** 2)) / (n * (n * n - 1))


def hand_krcc(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a (= tau-b without ties): (concordant - discordant) / pairs."""
    signs = [np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in combinations(range(len(x)), 2)]
    return float(np.sum(signs)) / len(signs)


def hand_plcc(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    return float(np.sum(dx * dy) / math.sqrt(np.sum(dx**2) * np.sum(dy**2)))


@pytest.mark.parametrize("order", [slice(None), slice(None, None, -1)])
def test_correlations_and_rmse_equal_their_hand_computation(order):
    pred, true = PRED, TRUE[order]  # the reversed labels give negative correlations: (pred, pred) would not
    got = point_metrics(pred, true)
    assert got["srcc"] == pytest.approx(hand_srcc(pred, true), abs=1e-12)
    assert got["krcc"] == pytest.approx(hand_krcc(pred, true), abs=1e-12)
    assert got["plcc"] == pytest.approx(hand_plcc(pred, true), abs=1e-12)
    assert got["rmse"] == pytest.approx(math.sqrt(np.mean((pred - true) ** 2)), abs=1e-12)
    # the hand values themselves, for the unreversed case: d = (1, -1, 1, -1, 1, -1) on the ranks
    if order == slice(None):
        assert got["srcc"] == pytest.approx(1 - 6 * 6 / (6 * 35)) and got["krcc"] == pytest.approx(9 / 15)
    else:
        assert got["srcc"] < -0.5 and got["krcc"] < 0


def test_logistic_plcc_straightens_a_monotone_curve():
    """Labels that are a logistic of the predictions: perfectly monotone but curved, so raw PLCC is below 1 and the
    PLCC after the 4-parameter fit is 1 (to the fit's tolerance), while SRCC is exactly 1."""
    pred = np.linspace(0, 1, 40)
    true = 1 + 7 / (1 + np.exp(-(pred - 0.4) * 12))
    got = point_metrics(pred, true)
    assert got["srcc"] == pytest.approx(1.0) and got["krcc"] == pytest.approx(1.0)
    assert got["plcc"] == pytest.approx(hand_plcc(pred, true)) and got["plcc"] < 0.97
    assert got["plcc_logistic"] > 0.999


def test_constant_predictions_give_nan_correlations_not_zero():
    got = point_metrics(np.full(6, 3.0), TRUE)
    assert all(math.isnan(got[k]) for k in ("srcc", "krcc", "plcc", "plcc_logistic"))
    assert got["rmse"] == pytest.approx(math.sqrt(np.mean((3.0 - TRUE) ** 2)))


def test_bootstrap_interval_covers_the_true_correlation_about_95_percent_of_the_time():
    """Bivariate normal samples with a known correlation (0.6): the 95% intervals of PLCC should cover it in about
    95% of independent test sets; 40 sets, so anything from 80% up is consistent with a correct interval."""
    rng = np.random.default_rng(0)
    rho, n, sets = 0.6, 150, 40
    covered, widths = [], []
    for _ in range(sets):
        x = rng.standard_normal(n)
        y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(n)
        plcc = evaluate_scores(x, y, n_boot=100, seed=int(rng.integers(1 << 31)))["plcc"]
        assert plcc["ci_low"] < plcc["value"] < plcc["ci_high"]
        covered.append(plcc["ci_low"] <= rho <= plcc["ci_high"])
        widths.append(plcc["ci_high"] - plcc["ci_low"])
    assert 0.8 <= np.mean(covered) <= 1.0
    # the textbook width: 2 * 1.96 * (1 - rho^2) / sqrt(n) for Pearson's r
    assert np.median(widths) == pytest.approx(2 * 1.96 * (1 - rho**2) / math.sqrt(n), rel=0.25)


def test_within_reference_measures_by_hand():
    """One reference, two types, three levels each; the clean image scored 5."""
    ref = np.array([1] * 6)
    kind = np.array([1, 1, 1, 2, 2, 2])
    level = np.array([1, 2, 3, 1, 2, 3])
    mos = np.array([6.0, 5.0, 4.0, 6.5, 5.5, 4.5])
    pred = np.array([5.5, 4.0, 4.5, 4.8, 4.2, 3.0])  # type 1: clean 5 < level 1 5.5, levels 2/3 swapped
    got = within_reference(pred, mos, ref, kind, level, clean={1: 5.0})
    assert got["clean_beats_level1"] == pytest.approx(0.5)  # type 1 no, type 2 yes
    # type 1: pairs (clean>1 no, clean>2 yes, clean>3 yes, 1>2 yes, 1>3 yes, 2>3 no) = 4/6; type 2: all 6 right
    assert got["ordered_pairs"] == pytest.approx((4 / 6 + 1) / 2)
    assert got["ordered_pairs_per_type"] == pytest.approx({"1": 4 / 6, "2": 1.0})
    assert got["per_reference_srcc"] == pytest.approx(hand_srcc(pred, mos))
    assert got["groups"] == 2 and got["groups_with_clean"] == 2 and got["references"] == 1


def test_spearman_interval_is_fishers_z_with_fiellers_variance():
    from pynima.evaluation.metrics import spearman_interval

    low, high = spearman_interval(0.5, 28)  # z = atanh(0.5) = 0.5493, half-width 1.96 * sqrt(1.06 / 25) = 0.4036
    assert (low, high) == pytest.approx((math.tanh(0.549306 - 0.403589), math.tanh(0.549306 + 0.403589)), abs=1e-5)
    assert low == pytest.approx(0.1447, abs=1e-4) and high == pytest.approx(0.7411, abs=1e-4)
    assert all(math.isnan(v) for v in spearman_interval(0.9, 3))


def test_save_figure_writes_the_format_the_suffix_names_and_closes_the_figure(tmp_path):
    from pynima.evaluation.plots import pyplot, save_figure

    plt = pyplot()
    for name, magic in (("a.png", b"\x89PNG"), ("a.svg", b"<?xml")):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        assert save_figure(fig, tmp_path / name) is None
        assert (tmp_path / name).read_bytes().startswith(magic) and not plt.fignum_exists(fig.number)
    fig, _ = plt.subplots()
    assert save_figure(fig).startswith(b"\x89PNG") and not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg"]  # no temporary file left


def test_per_type_srcc_is_scipys_within_each_type_and_leaves_out_small_or_constant_types():
    from scipy import stats

    from pynima.evaluation.evaluate import PER_TYPE_MIN, per_type_srcc

    rng = np.random.default_rng(3)
    n = PER_TYPE_MIN + 5
    kinds = np.array([1] * n + [2] * n + [3] * (PER_TYPE_MIN - 1))
    true = rng.normal(size=len(kinds))
    pred = true + rng.normal(scale=0.5, size=len(kinds))
    pred[kinds == 2] = 1.0  # a constant prediction: undefined, left out
    got = per_type_srcc(pred, true, kinds, {1: "noise"})
    assert list(got) == ["1"] and got["1"]["name"] == "noise" and got["1"]["n"] == n
    assert got["1"]["srcc"] == pytest.approx(stats.spearmanr(pred[:n], true[:n]).statistic, abs=1e-12)
    assert got["1"]["ci_low"] < got["1"]["srcc"] < got["1"]["ci_high"]


METRIC_KEYS = ("srcc", "krcc", "plcc", "plcc_logistic", "rmse", "emd")  # what resampled_metrics gives


@pytest.mark.parametrize("kendall_at_once", [True, False], ids=["kendall-matrices", "kendall-scipy"])
def test_each_resample_equals_point_metrics(kendall_at_once, monkeypatch):
    """The bootstrap's vectorized metrics against scipy's, resample by resample, on scores with ties (rounded) and
    on a resample with one image repeated (constant: NaN, as point_metrics gives)."""
    from pynima.evaluation import metrics

    if not kendall_at_once:
        monkeypatch.setattr(metrics, "KENDALL_PAIRS_MAX", 0)
    rng = np.random.default_rng(3)
    true = np.round(rng.uniform(1, 7, 25), 1)
    pred = np.round(true + rng.normal(0, 1.0, 25), 1)
    emd = rng.uniform(0.02, 0.2, 25)
    fitted = metrics.fit_logistic(pred, true)
    idx = np.vstack([rng.integers(0, 25, (40, 25)), np.full((1, 25), 7)])
    got = metrics.resampled_metrics(pred, true, idx, emd, fitted)
    assert set(got) == set(METRIC_KEYS)
    for r, row in enumerate(idx[:-1]):
        want = point_metrics(pred[row], true[row], emd[row], logistic=False)
        want["plcc_logistic"] = hand_plcc(fitted[row], true[row])
        for k in METRIC_KEYS:
            assert got[k][r] == pytest.approx(want[k], abs=1e-12), (k, r)
    assert all(math.isnan(got[k][-1]) for k in ("srcc", "krcc", "plcc", "plcc_logistic"))
    assert got["rmse"][-1] == pytest.approx(abs(pred[7] - true[7]))


def test_split_and_image_interval_is_the_nested_loop_over_the_same_draws():
    """The two-level bootstrap of a benchmark's summary against its definition written as loops over scipy's metrics:
    resample the splits, then each chosen split's images, then the median over the chosen splits."""
    from pynima.evaluation.metrics import percentile_interval
    from pynima.evaluation.summary import METRICS, split_and_image_interval

    rng = np.random.default_rng(5)
    preds = []
    for n in (9, 14, 11):
        mos = rng.uniform(1, 7, n)
        preds.append({"mos": mos, "pred_mean": mos + rng.normal(0, 1.5, n), "emd": rng.uniform(0.02, 0.2, n)})
    got = split_and_image_interval(preds, n_boot=60, seed=2)
    draws = np.random.default_rng(2)  # the draws in the function's order: the splits first, then split by split
    chosen = draws.integers(0, 3, (60, 3))
    values = {m: np.full((60, 3), np.nan) for m in METRICS}
    for j, p in enumerate(preds):
        for b, s in np.argwhere(chosen == j):
            idx = draws.integers(0, len(p["mos"]), len(p["mos"]))
            one = point_metrics(p["pred_mean"][idx], p["mos"][idx], p["emd"][idx], logistic=False)
            for m in METRICS:
                values[m][b, s] = one[m]
    for m in METRICS:
        want = percentile_interval([float(np.nanmedian(row)) for row in values[m]])
        assert got[m] == pytest.approx(want, abs=1e-12), m
