"""Generation metrics as small pure functions, with the MOSES definitions.

Edge cases are defined, never crashes: empty or all-invalid input gives 0.0; ``None``, an
empty string and a zero-atom molecule are invalid; novelty compares canonical SMILES on
both sides.

>>> validity(["CCO", "C1CC", "", None])
0.25
>>> uniqueness(["CCO", "OCC", "CCN"])
0.6666666666666666
>>> novelty(["CCO", "CCN"], training=["OCC"])
0.5
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rdkit import DataStructs
from rdkit.Chem.rdFingerprintGenerator import GetMorganGenerator

from molvae.chem import REPORT_PROPERTIES, canonical_smiles, compute_properties, to_mol

if TYPE_CHECKING:
    import torch

_MORGAN_1024 = GetMorganGenerator(radius=2, fpSize=1024)  # MOSES's fingerprint for diversity

__all__ = [
    "canonical_valid",
    "evaluate_samples",
    "generation_quality",
    "internal_diversity",
    "mean_and_std",
    "r2_and_mae",
    "novelty",
    "property_summary",
    "uniqueness",
    "validity",
]


def canonical_valid(smiles: Iterable[str | None]) -> list[str]:
    """Canonical SMILES of the valid entries, in input order (duplicates kept)."""
    out = []
    for s in smiles:
        c = canonical_smiles(s) if s else None
        if c:
            out.append(c)
    return out


def validity(smiles: Sequence[str | None]) -> float:
    """Fraction of entries that RDKit parses into a non-empty molecule (0.0 for no input)."""
    if not smiles:
        return 0.0
    return len(canonical_valid(smiles)) / len(smiles)


def uniqueness(smiles: Sequence[str | None], k: int | None = None) -> float:
    """MOSES unique@k: share of distinct canonical molecules among the first ``k`` valid ones.

    With fewer than ``k`` valid molecules all are used (and a warning is raised, as in MOSES).

    >>> uniqueness(["CCO", "CCO", "CCO", "CCN"], k=2)
    0.5
    >>> uniqueness([None, ""])
    0.0
    """
    valid = canonical_valid(smiles)
    if k is not None:
        if len(valid) < k:
            warnings.warn(f"unique@{k} computed on {len(valid)} valid molecules", stacklevel=2)
        valid = valid[:k]
    if not valid:
        return 0.0
    return len(set(valid)) / len(valid)


def novelty(smiles: Sequence[str | None], training: Iterable[str]) -> float:
    """MOSES novelty: share of distinct valid generated molecules that are not in ``training``.

    ``training`` is canonicalized here, unless it is already a set or a
    :class:`~molvae.trainset.TrainingSetIndex` (taken as canonical SMILES).

    >>> novelty([], training=["C"])
    0.0
    """
    generated = set(canonical_valid(smiles))
    if not generated:
        return 0.0
    from molvae.trainset import TrainingSetIndex

    known = training if isinstance(training, (set, frozenset, TrainingSetIndex)) else set(canonical_valid(training))
    return sum(g not in known for g in generated) / len(generated)


def internal_diversity(smiles: Sequence[str | None], p: int = 1) -> float:
    """MOSES IntDiv_p: ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over the valid molecules, self-pairs included.

    Tanimoto on Morgan fingerprints, radius 2, 1024 bits, as in MOSES.

    >>> internal_diversity(["CCO", "CCO"])
    0.0
    >>> internal_diversity([])
    0.0
    """
    mols = [to_mol(s) for s in canonical_valid(smiles)]
    if not mols:
        return 0.0
    fps = [_MORGAN_1024.GetFingerprint(m) for m in mols]
    total = 0.0
    for fp in fps:
        sims = DataStructs.BulkTanimotoSimilarity(fp, fps)
        total += (sum(s**p for s in sims) / len(fps)) ** (1.0 / p)
    return 1.0 - total / len(fps)


def property_summary(smiles: Sequence[str | None], names: Sequence[str] = REPORT_PROPERTIES) -> dict[str, float]:
    """Mean and standard deviation of each property over the valid molecules.

    >>> property_summary(["C", "CC"], ["heavy_atoms"])
    {'heavy_atoms_mean': 1.5, 'heavy_atoms_std': 0.5}
    """
    values: dict[str, list[float]] = {name: [] for name in names}
    for s in canonical_valid(smiles):
        props = compute_properties(to_mol(s), names)
        for name in names:
            values[name].append(props[name])
    return mean_and_std(values)


def mean_and_std(values: dict[str, Sequence[float]]) -> dict[str, float]:
    """``{name}_mean`` and ``{name}_std`` (population) of each list of values.

    >>> mean_and_std({"sa": [2.0, 4.0]})
    {'sa_mean': 3.0, 'sa_std': 1.0}
    """
    summary = {}
    for name, xs in values.items():
        mean = sum(xs) / len(xs) if xs else 0.0
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs)) if xs else 0.0
        summary[f"{name}_mean"], summary[f"{name}_std"] = mean, std
    return summary


def evaluate_samples(smiles: Sequence[str | None], training: Iterable[str] | None = None,
                     diversity_sample: int = 2000,
                     properties: dict[str, Sequence[float]] | None = None) -> dict[str, float]:
    """The standard table for a set of generated molecules.

    ``validity``, ``unique@1k`` and ``unique@10k`` (where enough molecules exist), ``uniqueness``
    (all valid), ``novelty`` (if ``training`` is given), ``int_div`` and ``int_div2`` (on the first
    ``diversity_sample`` valid molecules) and property means/standard deviations: of ``properties``
    (each property's values over all valid molecules, when the caller has computed them already),
    else of the first ``diversity_sample`` valid molecules.
    """
    valid = canonical_valid(smiles)
    result = {"n": float(len(smiles)), "validity": validity(smiles), "uniqueness": uniqueness(smiles)}
    for k, label in ((1000, "unique@1k"), (10000, "unique@10k")):
        if len(valid) >= k:
            result[label] = uniqueness(valid, k)
    if training is not None:
        result["novelty"] = novelty(valid, training)
    head = valid[:diversity_sample]
    result["int_div"] = internal_diversity(head, p=1)
    result["int_div2"] = internal_diversity(head, p=2)
    result.update(property_summary(head) if properties is None else mean_and_std(properties))
    return result


def generation_quality(smiles: Sequence[str | None], fcd_reference: tuple | None = None) -> dict[str, float]:
    """How much generated molecules look like the data, cheap enough to watch every epoch:
    ``sample_fcd`` (Fréchet ChemNet distance to ``fcd_reference``, a (mean, covariance) pair; NaN
    below two valid molecules), ``sample_sa`` and ``sample_qed`` (means) and ``sample_filters``
    (share passing the MOSES filters), on the valid molecules, duplicates kept as in MOSES.

    >>> q = generation_quality(["CCO", "c1ccccc1O", None])
    >>> sorted(q), round(q["sample_filters"], 2)
    (['sample_filters', 'sample_qed', 'sample_sa'], 1.0)
    """
    from molvae.moses import chemnet_moments, fcd_of_moments, passes_filters

    valid = canonical_valid(smiles)
    mols = [to_mol(s) for s in valid]
    result: dict[str, float] = {}
    if fcd_reference is not None:
        result["sample_fcd"] = fcd_of_moments(chemnet_moments(valid, None), fcd_reference)
    props = [compute_properties(m, ("sa", "qed")) for m in mols]
    result["sample_sa"] = sum(p["sa"] for p in props) / len(props) if props else math.nan
    result["sample_qed"] = sum(p["qed"] for p in props) / len(props) if props else math.nan
    result["sample_filters"] = sum(passes_filters(m) for m in mols) / len(mols) if mols else 0.0
    return result


def r2_and_mae(truth: torch.Tensor, guess: torch.Tensor) -> tuple[float, float]:
    """Coefficient of determination (0 for constant ``truth``) and mean absolute error of ``guess`` (N,)."""
    variance = float(((truth - truth.mean()) ** 2).mean())
    r2 = 1.0 - float(((truth - guess) ** 2).mean()) / variance if variance > 0 else 0.0
    return r2, float((truth - guess).abs().mean())
