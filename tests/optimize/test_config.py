"""OptimizeConfig and the ``[optimize]`` table of a run file (molvae.optimize.config)."""

from __future__ import annotations

import pytest

from molvae.optimize import OptimizeConfig, optimize_config_from_dict


def test_optimize_config_rejects_unknown_and_bad_values():
    assert optimize_config_from_dict({"budget": 5, "prior_weight": 0}).prior_weight == 0.0
    with pytest.raises(ValueError, match="unknown key 'budjet'"):
        optimize_config_from_dict({"budjet": 5})
    with pytest.raises(ValueError, match="optimize.budget must be an integer"):
        optimize_config_from_dict({"budget": "many"})
    with pytest.raises(ValueError, match="min_similarity"):
        OptimizeConfig(min_similarity=1.5)
    with pytest.raises(ValueError, match="bo_acquisition"):
        OptimizeConfig(bo_acquisition="ei")
