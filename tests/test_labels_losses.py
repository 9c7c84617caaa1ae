import math

import numpy as np
import pytest
import torch

from pynima.model.labels import max_entropy, moments, std_range, targets, vote_std
from pynima.model.losses import emd

FEASIBLE = [
    (m, s)
    for m in (0.4, 1.0, 2.7, 4.5, 5.51429, 7.9, 8.6)
    for s in (0.6, 1.0, 1.7, 2.5)
    if std_range(m)[0] < s < std_range(m)[1]
]


@pytest.mark.parametrize(("mean", "std"), FEASIBLE)
def test_max_entropy_recovers_mean_and_std(mean, std):
    p = max_entropy(mean, std)
    m, s = moments(p)
    assert p.shape == (10,) and p.min() >= 0 and p.sum() == pytest.approx(1.0)
    assert abs(m - mean) < 1e-6 and abs(s - std) < 1e-6


def test_max_entropy_has_the_exponential_quadratic_form():
    p = max_entropy(4.2, 1.3)
    k = np.arange(10)
    coef = np.polyfit(k, np.log(p), 2)  # log p is exactly quadratic in k
    assert np.allclose(np.polyval(coef, k), np.log(p), atol=1e-8)
    assert coef[0] < 0  # bell-shaped


def test_max_entropy_beats_other_distributions_with_same_moments():
    p = max_entropy(3.0, 1.5)
    other = np.array([0.05, 0.15, 0.2, 0.25, 0.2, 0.05, 0.05, 0.05, 0, 0], float)
    other /= other.sum()
    m, s = moments(other)
    q = max_entropy(float(m), float(s))
    ent = lambda x: -(x[x > 0] * np.log(x[x > 0])).sum()  # noqa: E731
    assert ent(q) > ent(other)
    assert p.argmax() == 3


def test_edge_cases():
    assert max_entropy(0.0, 1.0)[0] == 1.0
    assert max_entropy(9.5, 1.0)[-1] == 1.0
    tiny = max_entropy(5.3, 0.01)  # below the grid's minimum: the two bins around the mean
    assert tiny[5] == pytest.approx(0.7) and tiny[6] == pytest.approx(0.3) and tiny.sum() == pytest.approx(1)
    wide = max_entropy(3.0, 10.0)  # above the maximum: the two end bins
    assert wide[0] + wide[-1] == pytest.approx(1.0) and moments(wide)[0] == pytest.approx(3.0)
    lo, hi = std_range(5.3)
    assert lo == pytest.approx(math.sqrt(0.21)) and hi == pytest.approx(math.sqrt(5.3 * 3.7))
    with pytest.raises(ValueError, match="must be finite"):
        max_entropy(float("nan"), 1.0)


def test_mean_only_variant_is_geometric():
    p = max_entropy(2.0)
    ratios = p[1:] / p[:-1]
    assert np.allclose(ratios, ratios[0]) and ratios[0] < 1
    assert moments(p)[0] == pytest.approx(2.0, abs=1e-6)
    assert targets(np.array([2.0, 6.0]), None).shape == (2, 10)


def test_vote_std_choices():
    assert vote_std(0.13, "sem", observers=36) == pytest.approx(0.78)
    assert vote_std(np.array([0.1, 0.2]), "fixed").tolist() == [1.5, 1.5]
    assert vote_std(0.13, "raw") == pytest.approx(0.13)
    with pytest.raises(ValueError, match="vote std mode"):
        vote_std(0.1, "nope")


def emd_numpy(p, q, r=2):
    cp, cq = np.cumsum(p, -1), np.cumsum(q, -1)
    return float(np.mean([np.mean(np.abs(a - b) ** r) ** (1 / r) for a, b in zip(cp, cq, strict=True)]))


def test_emd_matches_numpy_and_is_zero_iff_equal():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), 8)
    q = rng.dirichlet(np.ones(10), 8)
    got = emd(torch.tensor(p), torch.tensor(q)).item()
    assert got == pytest.approx(emd_numpy(p, q), rel=1e-10)
    assert emd(torch.tensor(p), torch.tensor(q), r=1).item() == pytest.approx(emd_numpy(p, q, r=1), rel=1e-10)
    assert emd(torch.tensor(p), torch.tensor(p)).item() == 0.0
    per = emd(torch.tensor(p), torch.tensor(q), reduction="none")
    assert (per > 0).all() and per.shape == (8,)


def test_emd_is_per_sample_then_mean_not_batch_root():
    p = torch.tensor([[1.0] + [0.0] * 9, [0.0] * 9 + [1.0]])
    q = torch.tensor([[1.0] + [0.0] * 9, [1.0] + [0.0] * 9])
    # sample 0: 0; sample 1: CDFs differ by 1 on 9 of 10 bins -> sqrt(0.9)
    assert emd(p, q).item() == pytest.approx(math.sqrt(0.9) / 2)


def test_emd_gradient_is_finite_at_equality():
    logits = torch.randn(4, 10, requires_grad=True)
    p = torch.softmax(logits, -1)
    loss = emd(p, p.detach())
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_emd_of_a_nan_prediction_is_nan_not_zero():
    """A diverged network's NaN output must not count as a perfect prediction (EMD 0): checkpoint choice, early
    stopping and the learning-rate search would all prefer it."""
    p = torch.tensor([[math.nan] * 10, [0.1] * 10])
    q = torch.tensor([[0.1] * 10, [0.1] * 10])
    per = emd(p, q, reduction="none")
    assert math.isnan(per[0].item()) and per[1].item() == 0.0
    assert math.isnan(emd(p, q).item())


def test_constant_predictions_give_undefined_correlations_not_a_crash(caplog):
    """A model that predicts one value for every image (e.g. collapsed after a bad learning rate) is evaluated:
    correlations NaN with a warning, RMSE and EMD still real numbers."""
    import logging

    from pynima.evaluation.metrics import evaluate_scores

    true = np.linspace(1, 8, 40)
    with caplog.at_level(logging.WARNING, logger="pynima.evaluation"):
        m = evaluate_scores(np.full(40, 4.5), true, np.full(40, 0.2), n_boot=50)
    assert all(np.isnan(m[k]["value"]) and np.isnan(m[k]["ci_low"]) for k in ("srcc", "plcc", "krcc", "plcc_logistic"))
    assert m["rmse"]["value"] == pytest.approx(np.sqrt(np.mean((4.5 - true) ** 2)))
    assert m["emd"]["ci_low"] == pytest.approx(0.2) and "correlations are undefined" in caplog.text
