"""What "good" means for latent-space optimization: objectives, hard filters and batch scoring.

An :class:`Objective` names a target value and a goal:

* the target is a property from :data:`molvae.chem.PROPERTIES` (``qed``, ``logp``, ``sa``,
  ``plogp``, ...), Tanimoto similarity to a reference molecule (``sim``), or the user's own
  scorer given as a ``module:function`` path (see :func:`load_scorer`);
* the goal is ``max``, ``min`` or ``window`` (a range ``[low, high]`` to land in).

Scores are always "higher is better":

* **one objective** -- ``max`` scores the raw value, ``min`` the negated raw value, so
  ``qed:max`` ranks molecules exactly by QED; ``window`` scores its desirability.
* **several objectives** -- each raw value becomes a desirability in ``[0, 1]``
  (:func:`desirability`) and the score is their **weighted geometric mean**
  (:func:`weighted_geometric_mean`, Derringer's desirability): a molecule must be
  acceptable on every objective, one very bad value cannot be bought back by another.

Desirabilities: ``window`` is 1 inside ``[low, high]`` and falls off as a Gaussian outside,
``2 ** -((distance / width) ** 2)``, i.e. 0.5 at ``width`` outside the window (default width:
``high - low``). ``max``/``min`` use a logistic sigmoid that is 0.5 at ``midpoint`` and changes
by a factor ``e`` in odds per ``scale`` (defaults per property in :data:`SIGMOID_DEFAULTS`; a
custom scorer combined with other objectives must state both).

Objective strings (CLI), comma-separated, ``key=value`` options last::

    <target>:max[:key=value...]
    <target>:min[:key=value...]
    <target>:window:<low>:<high>[:key=value...]

    target = <property> | sim:<SMILES> | pmo:<task> | <module>:<function>
    keys   = weight (default 1), width (window falloff), midpoint, scale (max/min sigmoid)

e.g. ``"qed:max"``, ``"logp:window:2:3,sa:min"``, ``"qed:max:weight=2,sa:min:midpoint=3"``,
``"sim:CC(=O)Oc1ccccc1C(=O)O:max"``, ``"mypkg.scorers:score:max"``, ``"pmo:zaleplon_mpo"`` (a PMO
benchmark task, :mod:`molvae.pmo`; its goal defaults to ``max``). The same objectives as
TOML tables (``[[objectives]]``) use the keys ``property``, ``goal``, ``low``, ``high``,
``width``, ``midpoint``, ``scale``, ``weight`` and ``reference`` (see
:func:`objectives_from_tables`). Errors are ``ValueError`` naming the bad part.

Hard filters (:class:`Filters`) reject a molecule with a reason instead of a score; an
unparsable SMILES always fails with ``"invalid"``. Bad chemistry is data: scoring never raises
on a molecule.

>>> [r.score for r in score_smiles(["CCO", "not a molecule"], parse_objectives("heavy_atoms:max"))]
[3.0, None]
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal

from molvae.chem import (
    PROPERTIES,
    canonical_smiles,
    has_pains_alert,
    largest_ring_size,
    sa_score,
    tanimoto,
    to_mol,
)
from molvae.pmo import PMO_PREFIX, PMO_SCORERS, pmo_name

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from rdkit import Chem

    Number = float | torch.Tensor  # a desirability maps a raw value, or a tensor of them

__all__ = [
    "GOALS",
    "SIGMOID_DEFAULTS",
    "Filters",
    "Objective",
    "ScoredMolecule",
    "check_filters",
    "combined_score",
    "desirability",
    "filters_from_dict",
    "format_objectives",
    "load_scorer",
    "objectives_from_tables",
    "parse_objectives",
    "score_smiles",
    "score_table",
    "scorer_for",
    "sigmoid_desirability",
    "weighted_geometric_mean",
    "window_desirability",
]

Goal = Literal["max", "min", "window"]
GOALS: tuple[str, ...] = ("max", "min", "window")

Scorer = Callable[["Chem.Mol"], float]

# (midpoint, scale) of the max/min sigmoid per target when objectives are combined: the
# desirability is 0.5 at the midpoint; one scale further it is 0.73 (or 0.27).
SIGMOID_DEFAULTS: dict[str, tuple[float, float]] = {
    "qed": (0.5, 0.1),  # drug-likeness is 0..1; most of ZINC sits at 0.5..0.9
    "logp": (2.5, 1.0),  # ZINC250k mean 2.46, std 1.43
    "sa": (3.5, 0.5),  # 1 easy .. 10 hard; ZINC mean ~3.05
    "plogp": (0.0, 1.0),  # normalized: 0 is the ZINC250k mean, 1 is one std
    "plogp_raw": (0.0, 2.0),  # logP - SA - cycle; ZINC250k mean about -0.6
    "mw": (400.0, 50.0),  # Da
    "tpsa": (90.0, 20.0),  # A^2
    "hbd": (3.0, 1.0),
    "hba": (7.0, 1.5),
    "rotb": (7.0, 2.0),
    "rings": (3.0, 1.0),
    "heavy_atoms": (30.0, 5.0),
    "sim": (0.5, 0.1),  # Tanimoto 0..1
}

_OPTION_KEYS = ("weight", "width", "midpoint", "scale")  # key=value options in an objective string
_TABLE_KEYS = ("property", "goal", "low", "high", "width", "midpoint", "scale", "weight", "reference")


def _target_kind(target: str) -> Literal["property", "similarity", "pmo", "custom"]:
    if target in PROPERTIES:
        return "property"
    if target == "sim":
        return "similarity"
    if target.startswith(PMO_PREFIX):
        return "pmo"
    return "custom"


def _is_scorer_path(path: str) -> bool:
    module, sep, function = path.partition(":")
    dotted = (module, function)
    return bool(sep) and all(part and all(name.isidentifier() for name in part.split(".")) for part in dotted)


def _finite(value: float | None, name: str) -> None:
    if value is not None and not (isinstance(value, numbers.Real) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Objective:
    """One thing to optimize. Invalid combinations raise ``ValueError`` naming the field.

    >>> Objective("logp", "window", low=2, high=3).label
    'logp'
    >>> Objective("sim", "max", reference="CCO").label
    'sim:CCO'
    """

    property: str  # a PROPERTIES name, "sim", or a "module:function" scorer path
    goal: Goal  # "max", "min" or "window"
    low: float | None = None  # window only: lower end of the range with desirability 1
    high: float | None = None  # window only: upper end of that range
    width: float | None = None  # window only: desirability is 0.5 this far outside; default high - low
    midpoint: float | None = None  # max/min only: sigmoid is 0.5 here when objectives are combined
    scale: float | None = None  # max/min only: sigmoid steepness (odds change e-fold per scale)
    weight: float = 1.0  # exponent in the weighted geometric mean; irrelevant for one objective
    reference: str | None = None  # sim only: SMILES of the molecule to stay similar to

    def __post_init__(self) -> None:
        if not isinstance(self.property, str):
            raise TypeError(f"property must be str, got {type(self.property).__name__}")
        kind = _target_kind(self.property)
        if kind == "pmo":
            pmo_name(self.property)  # an unknown task raises, naming the tasks
        if kind == "custom" and not _is_scorer_path(self.property):
            raise ValueError(
                f"unknown property {self.property!r}; choose one of {', '.join(PROPERTIES)}, "
                "'sim' (with a reference) or a 'module:function' scorer path"
            )
        if kind == "similarity":
            if self.reference is None:
                raise ValueError("'sim' needs a reference SMILES")
            if to_mol(self.reference) is None:
                raise ValueError(f"reference SMILES {self.reference!r} does not parse")
        elif self.reference is not None:
            raise ValueError(f"reference only applies to 'sim', not to {self.property!r}")
        if self.goal not in GOALS:
            raise ValueError(f"unknown goal {self.goal!r}; choose max, min or window")
        for name in ("low", "high", "width", "midpoint", "scale", "weight"):
            _finite(getattr(self, name), name)
        if self.weight <= 0:
            raise ValueError(f"weight must be > 0, got {self.weight!r}")
        if self.scale is not None and self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale!r}")
        if self.goal == "window":
            if self.low is None or self.high is None:
                raise ValueError("window needs low and high, e.g. 'logp:window:2:3'")
            if self.low > self.high:
                raise ValueError(f"window low {self.low!r} is above high {self.high!r}")
            if self.midpoint is not None or self.scale is not None:
                raise ValueError("midpoint and scale apply to max/min, not to window (use width)")
            if self.width is not None and self.width <= 0:
                raise ValueError(f"width must be > 0, got {self.width!r}")
            if self.width is None and self.low == self.high:
                raise ValueError("a window with low == high needs an explicit width")
        else:
            if self.low is not None or self.high is not None:
                raise ValueError(f"{self.goal} takes no low/high; did you mean window?")
            if self.width is not None:
                raise ValueError(f"width applies to window, not to {self.goal} (use midpoint/scale)")

    @property
    def label(self) -> str:
        """Key of this objective's raw value in :attr:`ScoredMolecule.values`."""
        return f"sim:{self.reference}" if self.property == "sim" else self.property


# --- desirabilities -------------------------------------------------------------------------

# The desirabilities are written once, for floats and for tensors alike (the surrogate scores
# latent points with them, differentiably): the two helpers below are all that differs.

def _positive_part(x: Number) -> Number:
    """max(x, 0), exactly, for a float or a tensor."""
    return (x + abs(x)) / 2


def _logistic(t: Number) -> Number:
    """1 / (1 + exp(-t)) for a float or a tensor, never overflowing."""
    if hasattr(t, "sigmoid"):
        return t.sigmoid()
    if t >= 0:  # two branches so that exp never overflows
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def window_desirability(value: Number, low: float, high: float, width: float) -> Number:
    """1 inside ``[low, high]``; outside ``2 ** -((distance / width) ** 2)``, a Gaussian falloff
    that is 0.5 at ``width`` beyond the nearer edge and tends to 0.

    >>> window_desirability(2.5, 2, 3, 1), window_desirability(4, 2, 3, 1), window_desirability(0, 2, 3, 1)
    (1.0, 0.5, 0.0625)
    """
    ratio = (_positive_part(low - value) + _positive_part(value - high)) / width
    return 2.0 ** -(ratio * ratio)


def sigmoid_desirability(value: Number, midpoint: float, scale: float, goal: Literal["max", "min"]) -> Number:
    """Logistic map of a raw value to ``[0, 1]``: 0.5 at ``midpoint``, rising with the value
    for ``max``, falling for ``min``.

    >>> sigmoid_desirability(0.5, 0.5, 0.1, "max")
    0.5
    >>> round(sigmoid_desirability(0.6, 0.5, 0.1, "max"), 4), round(sigmoid_desirability(0.6, 0.5, 0.1, "min"), 4)
    (0.7311, 0.2689)
    """
    t = (value - midpoint) / scale
    return _logistic(-t if goal == "min" else t)


def weighted_geometric_mean(values: Sequence[float], weights: Sequence[float]) -> float:
    """``prod(v ** w) ** (1 / sum(w))`` of values in ``[0, 1]``; 0 if any value is 0.

    >>> weighted_geometric_mean([0.25, 1.0], [1, 1])
    0.5
    >>> round(weighted_geometric_mean([0.25, 1.0], [1, 3]), 4)
    0.7071
    >>> weighted_geometric_mean([0.0, 1.0], [1, 1])
    0.0
    """
    if len(values) != len(weights) or not values:
        raise ValueError("need as many weights as values, and at least one")
    if any(v <= 0.0 for v in values):
        return 0.0
    total = sum(weights)
    return math.exp(sum(w * math.log(v) for v, w in zip(values, weights)) / total)


def _sigmoid_params(objective: Objective) -> tuple[float | None, float | None]:
    default_mid, default_scale = SIGMOID_DEFAULTS.get(objective.property, (None, None))
    midpoint = objective.midpoint if objective.midpoint is not None else default_mid
    scale = objective.scale if objective.scale is not None else default_scale
    return midpoint, scale


def desirability(objective: Objective, value: Number) -> Number:
    """A raw value (a float, or a tensor of them) mapped to ``[0, 1]`` as it enters a combined score.

    >>> desirability(Objective("logp", "window", low=2, high=3), 2.2)
    1.0
    >>> desirability(Objective("qed", "max"), 0.5)
    0.5
    """
    if objective.goal == "window":
        width = objective.width if objective.width is not None else objective.high - objective.low
        return window_desirability(value, objective.low, objective.high, width)
    midpoint, scale = _sigmoid_params(objective)
    if midpoint is None or scale is None:
        raise ValueError(f"objective {objective.label!r}:{objective.goal} needs midpoint and scale to be combined")
    return sigmoid_desirability(value, midpoint, scale, objective.goal)


def _check_combination(objectives: Sequence[Objective]) -> None:
    if not objectives:
        raise ValueError("no objectives given; e.g. 'qed:max'")
    for objective in objectives:
        if not isinstance(objective, Objective):
            raise TypeError(f"expected Objective, got {type(objective).__name__}")
    if len(objectives) == 1:
        return
    for objective in objectives:
        if objective.goal == "window":
            continue
        midpoint, scale = _sigmoid_params(objective)
        if midpoint is None or scale is None:
            raise ValueError(
                f"objective '{objective.label}:{objective.goal}' is combined with others and has no "
                "default sigmoid: give midpoint= and scale="
            )


def combined_score(objectives: Sequence[Objective], values: Mapping[str, float]) -> float:
    """Score of one molecule from its raw values (keyed by :attr:`Objective.label`); higher is better.

    One objective: the raw value (``max``), its negation (``min``) or the window desirability.
    Several: the weighted geometric mean of the desirabilities, in ``[0, 1]``.

    >>> combined_score([Objective("sa", "min")], {"sa": 2.0})
    -2.0
    >>> qed, sa = Objective("qed", "max"), Objective("sa", "min", midpoint=3.0, scale=1.0)
    >>> combined_score([qed, sa], {"qed": 0.5, "sa": 3.0})
    0.5
    """
    _check_combination(objectives)
    if len(objectives) == 1:
        objective = objectives[0]
        value = values[objective.label]
        if objective.goal == "max":
            return float(value)
        if objective.goal == "min":
            return -float(value)
        return desirability(objective, value)
    return weighted_geometric_mean(
        [desirability(o, values[o.label]) for o in objectives], [o.weight for o in objectives]
    )


# --- scorers --------------------------------------------------------------------------------

def _import_here_too(module_name: str):
    """Import a module from ``sys.path`` or, failing that, from the working directory: a scorer in
    ``./my_scorers.py`` imports as ``my_scorers`` from the ``molvae`` command as from a script."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        here = os.getcwd()
        if err.name != module_name.split(".")[0] or here in sys.path:
            raise
    sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(here)


def load_scorer(path: str) -> Scorer:
    """Import a user's scorer from a ``module:function`` path (``module`` importable from
    ``sys.path`` or the working directory). The function takes a sanitized RDKit ``Mol`` -- the same as every
    :data:`molvae.chem.PROPERTIES` entry -- and returns a number (``None`` or NaN: no value,
    the molecule is then rejected with a reason). Use ``Chem.MolToSmiles(mol)`` inside it if
    the scorer wants SMILES.

    >>> load_scorer("math:fabs")(-2.0)
    2.0
    >>> load_scorer("math:pi")
    Traceback (most recent call last):
    ...
    ValueError: scorer 'math:pi' is not callable (it is a float)
    """
    if not isinstance(path, str):
        raise TypeError(f"scorer path must be str, got {type(path).__name__}")
    if not _is_scorer_path(path):
        raise ValueError(f"scorer path {path!r} must look like 'module:function', e.g. 'mypkg.scorers:score'")
    module_name, _, attribute = path.partition(":")
    try:
        module = _import_here_too(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} of scorer {path!r}: {err}") from err
    target: object = module
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError as err:
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r} (scorer {path!r})") from err
    if not callable(target):
        raise ValueError(f"scorer {path!r} is not callable (it is a {type(target).__name__})")
    return target  # type: ignore[return-value]


def scorer_for(objective: Objective) -> Scorer:
    """The function ``Mol -> raw value`` of an objective; imports a custom scorer, so call it
    once up front to fail early on a wrong path.

    >>> scorer_for(Objective("sim", "max", reference="CCO"))(to_mol("OCC"))
    1.0
    """
    kind = _target_kind(objective.property)
    if kind == "property":
        return PROPERTIES[objective.property]
    if kind == "similarity":
        reference = to_mol(objective.reference)
        return lambda mol: tanimoto(mol, reference)
    if kind == "pmo":
        return PMO_SCORERS[objective.property]
    return load_scorer(objective.property)


# --- filters --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """Hard constraints; ``None``/``False`` switches one off. A failed filter is reported by its
    field name. Validity is always required (failure ``"invalid"``)."""

    max_sa: float | None = None  # reject SA score above this (1 easy .. 10 hard)
    no_pains: bool = False  # reject molecules matching a PAINS A/B/C alert
    min_ring_size: int | None = None  # reject any ring smaller than this (e.g. 5: no 3-/4-rings)
    max_ring_size: int | None = None  # reject any ring larger than this (e.g. 6: no macrocycles)
    min_mw: float | None = None  # reject molecular weight below this (Da)
    max_mw: float | None = None  # reject molecular weight above this (Da)

    def __post_init__(self) -> None:
        for name in ("max_sa", "min_mw", "max_mw"):
            _finite(getattr(self, name), name)
        for name in ("min_ring_size", "max_ring_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 3):
                raise ValueError(f"{name} must be an integer >= 3, got {value!r}")
        if not isinstance(self.no_pains, bool):
            raise ValueError(f"no_pains must be true or false, got {self.no_pains!r}")
        for low_name, high_name in (("min_ring_size", "max_ring_size"), ("min_mw", "max_mw")):
            low, high = getattr(self, low_name), getattr(self, high_name)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{low_name} {low!r} is above {high_name} {high!r}")


def _smallest_ring_size(mol: Chem.Mol) -> int | None:
    return min((len(ring) for ring in mol.GetRingInfo().AtomRings()), default=None)


def check_filters(mol: Chem.Mol, filters: Filters) -> tuple[str, ...]:
    """Names of the filters a (valid) molecule fails, in :class:`Filters` field order.

    >>> check_filters(to_mol("C1CC1CCCCCCCC"), Filters(min_ring_size=5, max_mw=100))
    ('min_ring_size', 'max_mw')
    >>> check_filters(to_mol("c1ccccc1"), Filters(min_ring_size=5, max_ring_size=6))
    ()
    """
    failures = []
    if filters.max_sa is not None and sa_score(mol) > filters.max_sa:
        failures.append("max_sa")
    if filters.no_pains and has_pains_alert(mol):
        failures.append("no_pains")
    if filters.min_ring_size is not None:
        smallest = _smallest_ring_size(mol)
        if smallest is not None and smallest < filters.min_ring_size:
            failures.append("min_ring_size")
    if filters.max_ring_size is not None and largest_ring_size(mol) > filters.max_ring_size:
        failures.append("max_ring_size")
    if filters.min_mw is not None or filters.max_mw is not None:
        mw = PROPERTIES["mw"](mol)
        if filters.min_mw is not None and mw < filters.min_mw:
            failures.append("min_mw")
        if filters.max_mw is not None and mw > filters.max_mw:
            failures.append("max_mw")
    return tuple(failures)


# --- batch scoring --------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoredMolecule:
    """One molecule's scoring. ``score`` is ``None`` exactly when ``failures`` is not empty."""

    input: str | None  # the SMILES as given
    smiles: str | None  # canonical SMILES; None when invalid
    valid: bool  # parses into a non-empty molecule
    values: dict[str, float] = field(default_factory=dict)  # raw value per Objective.label (valid only)
    score: float | None = None  # higher is better; None when invalid or a filter failed
    failures: tuple[str, ...] = ()  # "invalid", failed Filters field names, "no_value:<label>"


def score_smiles(
    smiles: Iterable[str | None], objectives: Sequence[Objective], filters: Filters = Filters()
) -> list[ScoredMolecule]:
    """Score a batch of SMILES, one :class:`ScoredMolecule` per input, in order.

    Raw values are computed for every valid molecule, also for one that fails a filter.
    Unparsable or empty SMILES (and ``None``) are invalid, never an error.

    >>> good, bad = score_smiles(["OCC", ""], parse_objectives("qed:max"))
    >>> good.smiles, round(good.score, 4), bad.valid, bad.failures
    ('CCO', 0.4068, False, ('invalid',))
    >>> score_smiles(["C1CC1"], parse_objectives("qed:max"), Filters(min_ring_size=5))[0].failures
    ('min_ring_size',)
    """
    if isinstance(smiles, str):
        raise TypeError("score_smiles takes a list of SMILES, not one string")
    objectives = tuple(objectives)
    _check_combination(objectives)
    scorers = {objective.label: scorer_for(objective) for objective in objectives}
    return [_score_one(s, objectives, scorers, filters) for s in smiles]


def _score_one(
    smiles: str | None, objectives: tuple[Objective, ...], scorers: Mapping[str, Scorer], filters: Filters
) -> ScoredMolecule:
    mol = to_mol(smiles)
    if mol is None:
        return ScoredMolecule(input=smiles, smiles=None, valid=False, failures=("invalid",))
    failures = list(check_filters(mol, filters))
    values: dict[str, float] = {}
    for label, scorer in scorers.items():
        raw = scorer(mol)
        if raw is None:
            failures.append(f"no_value:{label}")
            continue
        if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
            raise TypeError(f"scorer {label!r} returned {type(raw).__name__}, expected a number")
        if not math.isfinite(raw):
            failures.append(f"no_value:{label}")
            continue
        values[label] = float(raw)
    score = None if failures else combined_score(objectives, values)
    return ScoredMolecule(
        input=smiles, smiles=canonical_smiles(smiles), valid=True, values=values, score=score,
        failures=tuple(failures),
    )


def _failure_reason(failure: str) -> str:
    if failure == "invalid":
        return "invalid SMILES (does not parse, or no atoms)"
    if failure.startswith("no_value:"):
        return f"{failure.removeprefix('no_value:')} has no value for this molecule"
    return f"fails filter {failure}"


def score_table(
    smiles: Sequence[str | None], objectives: Sequence[Objective], filters: Filters = Filters()
) -> pd.DataFrame:
    """Every input molecule scored, one row per input in order: what ``molvae evaluate`` writes.

    Columns: ``row`` (1-based position in the input, as every molvae table numbers input rows),
    ``input`` (as given), ``smiles`` (canonical; empty when invalid), one column of raw values per
    objective label (empty where there is none), ``score`` (empty where the molecule cannot be
    scored) and ``reason`` (why not, ``; ``-joined; empty when scored).

    >>> table = score_table(["OCC", "not a molecule"], parse_objectives("pmo:qed"))
    >>> table.columns.tolist()
    ['row', 'input', 'smiles', 'pmo:qed', 'score', 'reason']
    >>> round(float(table.loc[0, "score"]), 4), table.loc[1, "reason"]
    (0.4068, 'invalid SMILES (does not parse, or no atoms)')
    """
    import pandas as pd

    objectives = tuple(objectives)
    scored = score_smiles(list(smiles), objectives, filters)
    labels = list(dict.fromkeys(objective.label for objective in objectives))
    rows = [
        {"row": position + 1, "input": result.input, "smiles": result.smiles,
         **{label: result.values.get(label) for label in labels}, "score": result.score,
         "reason": "; ".join(_failure_reason(f) for f in result.failures)}
        for position, result in enumerate(scored)
    ]
    columns = ["row", "input", "smiles", *labels, "score", "reason"]
    table = pd.DataFrame(rows, columns=columns)
    for column in [*labels, "score"]:
        table[column] = table[column].astype(float)
    return table


# --- parsing --------------------------------------------------------------------------------

def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


def _parse_one(part: str) -> Objective:
    tokens = part.split(":")
    head = tokens[0]
    reference = None
    if head == "sim":
        goal_at = next((i for i in range(1, len(tokens)) if tokens[i] in GOALS), None)
        if goal_at is None:
            raise ValueError("no goal after the reference; expected e.g. 'sim:CCO:max'")
        reference = ":".join(tokens[1:goal_at])  # SMILES may contain ':' (explicit aromatic bonds)
        if not reference:
            raise ValueError("'sim' needs a reference SMILES, e.g. 'sim:CCO:max'")
        target, rest = "sim", tokens[goal_at:]
    elif head in PROPERTIES:
        target, rest = head, tokens[1:]
    elif head + ":" == PMO_PREFIX and len(tokens) >= 2:
        target, rest = pmo_name(tokens[1]), tokens[2:]
        if not rest or "=" in rest[0]:
            rest = ["max", *rest]  # a PMO task is maximized unless told otherwise
    elif len(tokens) >= 2 and tokens[1] not in GOALS and "=" not in tokens[1]:
        target, rest = f"{tokens[0]}:{tokens[1]}", tokens[2:]
    else:
        raise ValueError(
            f"unknown property {head!r}; choose one of {', '.join(PROPERTIES)}, "
            "'sim:<SMILES>' or a scorer 'module:function'"
        )
    if not rest or not rest[0]:
        raise ValueError("missing goal; add ':max', ':min' or ':window:<low>:<high>'")
    goal, args = rest[0], rest[1:]
    if goal not in GOALS:
        raise ValueError(f"unknown goal {goal!r}; choose max, min or window")
    bounds = []
    while args and "=" not in args[0]:
        bounds.append(args.pop(0))
    options: dict[str, float] = {}
    for arg in args:
        key, _, text = arg.partition("=")
        if "=" not in arg:
            raise ValueError(f"{arg!r} after options; bounds come right after the goal")
        if key not in _OPTION_KEYS:
            raise ValueError(f"unknown option {key!r}; choose from {', '.join(_OPTION_KEYS)}")
        if key in options:
            raise ValueError(f"option {key!r} given twice")
        options[key] = _number(text, key)
    if goal == "window":
        if len(bounds) != 2:
            raise ValueError("window needs exactly two bounds, e.g. 'logp:window:2:3'")
        low, high = _number(bounds[0], "low"), _number(bounds[1], "high")
        return Objective(target, goal, low=low, high=high, reference=reference, **options)
    if bounds:
        raise ValueError(f"{goal} takes no bounds (got {':'.join(bounds)!r}); did you mean window?")
    return Objective(target, goal, reference=reference, **options)


def parse_objectives(spec: str) -> tuple[Objective, ...]:
    """Objectives from a comma-separated CLI string (syntax in the module docstring).

    >>> [(o.label, o.goal, o.low, o.high, o.weight) for o in parse_objectives("logp:window:2:3,sa:min:weight=2")]
    [('logp', 'window', 2.0, 3.0, 1.0), ('sa', 'min', None, None, 2.0)]
    >>> parse_objectives("qed:maximum")
    Traceback (most recent call last):
    ...
    ValueError: bad objective 'qed:maximum': unknown goal 'maximum'; choose max, min or window
    """
    if not isinstance(spec, str):
        raise TypeError(f"objective spec must be str, got {type(spec).__name__}")
    if not spec.strip():
        raise ValueError("empty objective spec; expected e.g. 'qed:max'")
    objectives = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"empty objective in {spec!r} (a stray comma?)")
        try:
            objectives.append(_parse_one(part))
        except ValueError as err:
            raise ValueError(f"bad objective {part!r}: {err}") from None
    _check_combination(objectives)
    return tuple(objectives)


def format_objectives(objectives: Sequence[Objective]) -> str:
    """The CLI string for objectives; :func:`parse_objectives` reads it back to equal objectives.

    >>> format_objectives(parse_objectives("logp:window:2:3:width=0.5, qed:max"))
    'logp:window:2.0:3.0:width=0.5,qed:max'
    """
    parts = []
    for o in objectives:
        tokens = [o.label, o.goal]
        if o.goal == "window":
            tokens += [repr(float(o.low)), repr(float(o.high))]
        for key in _OPTION_KEYS:
            value = getattr(o, key)
            if value is not None and not (key == "weight" and value == 1.0):
                tokens.append(f"{key}={float(value)!r}")
        parts.append(":".join(tokens))
    return ",".join(parts)


def objectives_from_tables(tables: Sequence[Mapping[str, object]]) -> tuple[Objective, ...]:
    """Objectives from TOML-style tables (e.g. a run file's ``[[objectives]]`` list).

    Keys: ``property`` and ``goal`` (required), ``low``, ``high``, ``width``, ``midpoint``,
    ``scale``, ``weight``, ``reference``, with the meanings of the :class:`Objective` fields.

    >>> objectives_from_tables([{"property": "sim", "goal": "max", "reference": "CCO", "weight": 2}])[0].weight
    2.0
    >>> objectives_from_tables([{"property": "qed", "goal": "max", "wieght": 2}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: objective 1 ('qed'): unknown key 'wieght'; allowed: property, goal, low, high, ...
    """
    if isinstance(tables, Mapping) or isinstance(tables, str):
        raise TypeError("objectives must be a list of tables")
    objectives = []
    for number, table in enumerate(tables, start=1):
        if not isinstance(table, Mapping):
            raise ValueError(f"objective {number} must be a table, got {type(table).__name__}")
        where = f"objective {number} ({table.get('property')!r})"
        for key in table:
            if key not in _TABLE_KEYS:
                raise ValueError(f"{where}: unknown key {key!r}; allowed: {', '.join(_TABLE_KEYS)}")
        for key in ("property", "goal"):
            if key not in table:
                raise ValueError(f"{where}: missing key {key!r}")
            if not isinstance(table[key], str):
                raise ValueError(f"{where}: {key} must be a string, got {table[key]!r}")
        if "reference" in table and not isinstance(table["reference"], str):
            raise ValueError(f"{where}: reference must be a SMILES string, got {table['reference']!r}")
        numbers_ = {}
        for key in ("low", "high", "width", "midpoint", "scale", "weight"):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise ValueError(f"{where}: {key} must be a number, got {value!r}")
                numbers_[key] = float(value)
        try:
            objectives.append(Objective(table["property"], table["goal"], reference=table.get("reference"), **numbers_))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    _check_combination(objectives)
    return tuple(objectives)


def filters_from_dict(table: Mapping[str, object]) -> Filters:
    """:class:`Filters` from a TOML-style table; an unknown key is an error that names it.

    >>> filters_from_dict({"max_sa": 4.5, "no_pains": True})
    Filters(max_sa=4.5, no_pains=True, min_ring_size=None, max_ring_size=None, min_mw=None, max_mw=None)
    >>> filters_from_dict({"max_ring": 6})
    Traceback (most recent call last):
    ...
    ValueError: filters: unknown key 'max_ring'; allowed: max_sa, no_pains, min_ring_size, max_ring_size, min_mw, max_mw
    """
    allowed = [f.name for f in fields(Filters)]
    for key in table:
        if key not in allowed:
            raise ValueError(f"filters: unknown key {key!r}; allowed: {', '.join(allowed)}")
    kwargs = dict(table)
    for key in ("max_sa", "min_mw", "max_mw"):
        value = kwargs.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"filters: {key} must be a number, got {value!r}")
            kwargs[key] = float(value)
    try:
        return Filters(**kwargs)  # type: ignore[arg-type]
    except ValueError as err:
        raise ValueError(f"filters: {err}") from None
