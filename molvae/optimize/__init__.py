"""Property-guided optimization in latent space: an oracle with a call budget, property
surrogates on z, and optimizers behind one interface.

The pieces:

* :class:`Oracle` -- the only judge. It decodes latent points (greedy, optionally several
  decodes per point), canonicalizes, and scores with the REAL RDKit objective
  (:func:`molvae.objectives.score_smiles`). It keeps a cache of scored molecules and an honest
  account of every decode (:class:`OracleStats`).
* **Oracle call** (the budget unit): one RDKit scoring of a valid molecule (canonical SMILES)
  this oracle has not scored before and that meets the similarity floor. Invalid decodes,
  repeats of an already scored molecule (duplicates) and molecules below the similarity floor
  cost no call and are counted apart. The oracle never makes more than ``budget`` calls; points
  it cannot afford are reported as ``unscored``. A molecule that fails a hard filter has been
  scored (it costs a call) but gets no score.
* Surrogates -- property predictors on z that return ``K`` ensemble members' predictions of the
  objectives' raw values, so a mean and an uncertainty (std over members): the model's jointly
  trained head (:class:`HeadSurrogate`, one member) or an ensemble of MLPs fitted afterwards on
  encoded molecules (:class:`EnsembleSurrogate`, :func:`fit_ensemble`).
* Optimizers, a plain dict :data:`OPTIMIZERS` of functions with one signature
  ``(oracle, surrogate, objectives, config, start) -> None`` that drive the oracle until its
  budget is spent (or ``max_stale_rounds`` rounds in a row score nothing new): ``gradient``
  (ascent on the surrogate with a prior penalty, many starts in parallel), ``bo``
  (Gaussian-process Bayesian optimization with batch acquisition in a TuRBO-style trust region,
  via BoTorch, imported only when BO runs), ``neighbourhood`` (hill climbing around a seed with a
  radius kept where decodes clear the similarity floor; from random starts, a population search
  around the latent points of the best molecules so far) and ``random`` (prior samples: the baseline).
* :func:`optimize` runs methods from random starts; :func:`optimize_leads` optimizes from seed
  molecules under a Tanimoto similarity floor; :func:`run_campaign` does either and returns every
  table a chemist reads (what ``molvae optimize`` and :meth:`molvae.Model.optimize` run).

The modules: ``config`` (OptimizeConfig), ``surrogates``, ``oracle`` (the budget and the account of
every decode), ``rewrites`` (rewriting a seed's SELFIES), the searches ``search`` (starts, random,
gradient), ``bo`` and ``neighbourhood`` (with ``finetune``, weighted retraining), ``methods`` (the
methods by name), ``leads``, ``results`` and ``campaign``.

Every candidate's surrogate prediction is kept next to its true score, so the gap between the
surrogate and the truth is reported (:func:`surrogate_gap`); results are ranked by the true score.

>>> round(top_k_auc([0.5, 0.9, 0.7], k=1, budget=4, freq=2), 4)
0.675
"""

from molvae.optimize.bo import run_bo
from molvae.optimize.campaign import Campaign, default_methods, mean_improvement_curve, resolve_recipe, run_campaign
from molvae.optimize.config import (POPULATION_SEARCH, OptimizeConfig, method_settings, optimize_config_from_dict,
                                    random_start_settings, settings_per_method)
from molvae.optimize.leads import LeadResult, lead_summary, optimize_leads
from molvae.optimize.methods import OPTIMIZERS, optimize, run_method
from molvae.optimize.neighbourhood import run_neighbourhood
from molvae.optimize.oracle import Candidate, Oracle, OracleStats, PointOutcome
from molvae.optimize.results import MethodResult, OptimizationResult, candidates_table, surrogate_gap, top_k_auc
from molvae.optimize.search import Optimizer, run_gradient, run_random
from molvae.optimize.surrogates import (EnsembleSurrogate, HeadSurrogate, Surrogate, build_surrogate, fit_ensemble,
                                        surrogate_score, surrogate_training_data)

__all__ = [
    "OPTIMIZERS",
    "POPULATION_SEARCH",
    "Campaign",
    "Candidate",
    "EnsembleSurrogate",
    "HeadSurrogate",
    "LeadResult",
    "MethodResult",
    "OptimizationResult",
    "OptimizeConfig",
    "Optimizer",
    "Oracle",
    "OracleStats",
    "PointOutcome",
    "Surrogate",
    "build_surrogate",
    "candidates_table",
    "default_methods",
    "fit_ensemble",
    "lead_summary",
    "mean_improvement_curve",
    "method_settings",
    "optimize",
    "optimize_config_from_dict",
    "optimize_leads",
    "random_start_settings",
    "resolve_recipe",
    "run_bo",
    "run_campaign",
    "run_gradient",
    "run_method",
    "run_neighbourhood",
    "run_random",
    "settings_per_method",
    "surrogate_gap",
    "surrogate_score",
    "surrogate_training_data",
    "top_k_auc",
]
