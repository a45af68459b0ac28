"""What a run reports (molvae.optimize.results): the PMO top-k AUC and the surrogate's gap."""

from __future__ import annotations

import math

import pytest

from molvae.optimize import Candidate, surrogate_gap, top_k_auc


def test_top_k_auc_follows_pmo():
    assert top_k_auc([], k=10, budget=100) == 0.0
    assert top_k_auc([1.0] * 100, k=10, budget=100, freq=10) == pytest.approx(0.95)
    # stopping early extends the last value flat to the budget
    assert top_k_auc([1.0] * 50, k=1, budget=100, freq=10) == pytest.approx((5 + 40 + 50) / 100)
    # a call without a score counts as a call and never enters the top-k
    assert top_k_auc([None, 1.0], k=1, budget=2, freq=1) == pytest.approx((0 + 0.5) / 2)


def test_surrogate_gap_is_nan_without_predictions():
    candidate = Candidate("CCO", 0.4, {"qed": 0.4}, (), None, "random", 1, 1)
    gap = surrogate_gap([candidate])
    assert gap["surrogate_n"] == 0 and math.isnan(gap["surrogate_mae"])
