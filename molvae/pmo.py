"""The 20 RDKit-only objectives of the PMO benchmark (Gao et al. 2022, "Sample Efficiency Matters"),
scored as PMO's oracles score them, as a plain dict :data:`PMO_SCORERS` of ``name -> (Mol -> float)``.

PMO's oracles are TDC's (PyTDC 0.3.6, the version mol_opt pins), which copy GuacaMol's goal-directed
scoring functions. Sixteen tasks here equal the ``guacamol`` package's values (0.5.5; checked to 1e-6
in tests/test_pmo.py against tests/fixtures/pmo_reference.csv, made by
pipelines/benchmarks/make_pmo_fixture.py). The four tasks built on formula isomers follow PMO's TDC:

* ``isomers_c7h8n2o2``, ``isomers_c9h10n2o2pf2cl``, ``zaleplon_mpo`` (its formula term): each element's
  count is scored as in GuacaMol (hydrogens included), but the **total** atom count that GuacaMol takes
  from the molecule with its hydrogens, PyTDC 0.3.6 reads from the *SMILES text* with the formula
  pattern ``[A-Z][a-z]*\\d*``: implicit hydrogens are not counted, lowercase aromatic atoms only as part
  of a preceding capital (``Cc``), and ring-closure digits after a capital are taken as counts
  (``C1`` is one atom, ``C12`` twelve). The text is RDKit's canonical SMILES, as mol_opt's oracle
  passes it. PyTDC 0.3.7 (August 2022) counts from the formula with hydrogens, as GuacaMol does, and
  keeps the old functions as ``*_prev``.
* ``sitagliptin_mpo``: TDC's ``sitagliptin_mpo_prev`` (0.3.7+), i.e. 0.3.6's isomer scoring with the
  logP, TPSA and similarity modifiers in place. PyTDC 0.3.6 as released (February 2022) leaves those
  three modifiers out (values far above 1); TDC fixed it in April 2022, and PMO's published values
  (all in [0, 1]) are of the fixed function.

``drd2``, ``gsk3b`` and ``jnk3`` are not here: they are TDC's trained classifiers, downloaded at run
time, which this project cannot fetch.

Every scorer takes a sanitized RDKit ``Mol`` and returns a float in ``[0, 1]``; reference
fingerprints are computed on first use (nothing happens at import time).

>>> from rdkit import Chem
>>> round(PMO_SCORERS["pmo:celecoxib_rediscovery"](Chem.MolFromSmiles("Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1")), 6)
1.0
>>> len(PMO_SCORERS), "pmo:drd2" in PMO_SCORERS
(20, False)
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence

from rdkit import Chem, DataStructs
from rdkit.Chem import Descriptors, rdMolDescriptors
from rdkit.Chem import rdFingerprintGenerator as fpgen
from rdkit.Chem.Pharm2D import Generate, Gobbi_Pharm2D

__all__ = ["PMO_PREFIX", "PMO_SCORERS", "PMO_TASKS", "pmo_name"]

PMO_PREFIX = "pmo:"

Scorer = Callable[[Chem.Mol], float]


# --- GuacaMol's score modifiers ---------------------------------------------------------------

def _gaussian(x: float, mu: float, sigma: float) -> float:
    """1 at ``mu``, a Gaussian bell of width ``sigma`` around it (GuacaMol's GaussianModifier)."""
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _min_gaussian(x: float, mu: float, sigma: float) -> float:
    """1 up to ``mu``, then a Gaussian falloff (GuacaMol's MinGaussianModifier: lower is fine)."""
    return _gaussian(max(x, mu), mu, sigma)


def _max_gaussian(x: float, mu: float, sigma: float) -> float:
    """1 from ``mu`` on, a Gaussian falloff below (GuacaMol's MaxGaussianModifier: higher is fine)."""
    return _gaussian(min(x, mu), mu, sigma)


def _clipped(x: float, upper_x: float) -> float:
    """``x / upper_x`` clipped to [0, 1] (GuacaMol's ClippedScoreModifier with its defaults)."""
    return min(max(x / upper_x, 0.0), 1.0)


def _geometric_mean(values: Sequence[float]) -> float:
    product = math.prod(values)
    return product ** (1.0 / len(values))


def _arithmetic_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


# --- fingerprints and similarity (GuacaMol's utils/fingerprints.py) ---------------------------

@functools.cache
def _generator(kind: str):  # noqa: ANN202 -- an RDKit fingerprint generator
    # Sparse count fingerprints: the generators' equivalents of GetMorganFingerprint(mol, r),
    # GetMorganFingerprint(mol, 2, useFeatures=True) and GetAtomPairFingerprint(mol, maxLength=10).
    if kind == "ECFP4":
        return fpgen.GetMorganGenerator(radius=2)
    if kind == "ECFP6":
        return fpgen.GetMorganGenerator(radius=3)
    if kind == "FCFP4":
        return fpgen.GetMorganGenerator(radius=2, atomInvariantsGenerator=fpgen.GetMorganFeatureAtomInvGen())
    if kind == "AP":
        return fpgen.GetAtomPairGenerator(maxDistance=10)
    raise ValueError(f"unknown fingerprint {kind!r}")


def _fingerprint(mol: Chem.Mol, kind: str):  # noqa: ANN202 -- an RDKit sparse vector
    if kind == "PHCO":  # Gobbi 2D pharmacophore
        return Generate.Gen2DFingerprint(mol, Gobbi_Pharm2D.factory)
    return _generator(kind).GetSparseCountFingerprint(mol)


@functools.cache
def _reference(smiles: str, kind: str):  # noqa: ANN202
    return _fingerprint(Chem.MolFromSmiles(smiles), kind)


def _similarity(mol: Chem.Mol, smiles: str, kind: str) -> float:
    """Tanimoto similarity of ``mol`` to the reference ``smiles`` with fingerprint ``kind``."""
    return DataStructs.TanimotoSimilarity(_fingerprint(mol, kind), _reference(smiles, kind))


@functools.cache
def _smarts(pattern: str) -> Chem.Mol:
    return Chem.MolFromSmarts(pattern)


def _has(mol: Chem.Mol, pattern: str) -> float:
    """1.0 when the SMARTS ``pattern`` matches (GuacaMol's SMARTSScoringFunction)."""
    return 1.0 if mol.HasSubstructMatch(_smarts(pattern)) else 0.0


@functools.cache
def _descriptors_of(smiles: str) -> tuple[float, float, float]:
    """(logP, TPSA, Bertz CT) of a reference molecule."""
    mol = Chem.MolFromSmiles(smiles)
    return Descriptors.MolLogP(mol), Descriptors.TPSA(mol), Descriptors.BertzCT(mol)


# --- formula isomers, as PyTDC 0.3.6 scores them ----------------------------------------------

_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]*)(\d*)")


def _formula_counts(text: str) -> list[tuple[str, int]]:
    """``[(element, count), ...]`` read from a formula -- or, as TDC 0.3.6 does for the total, from SMILES text.

    >>> _formula_counts("C7H8N2O2"), sum(n for _, n in _formula_counts("CC1=CC=CC=C1"))
    ([('C', 7), ('H', 8), ('N', 2), ('O', 2)], 7)
    """
    return [(element, int(count) if count else 1) for element, count in _FORMULA_TOKEN.findall(text)]


def _atom_count(mol: Chem.Mol, element: str) -> int:
    if element == "H":
        mol = Chem.AddHs(mol)
    return sum(1 for atom in mol.GetAtoms() if atom.GetSymbol() == element)


def _isomer_score(mol: Chem.Mol, formula: str) -> float:
    """Closeness to ``formula``: geometric mean of a Gaussian (sigma 1) per element count and one
    (sigma 2) on the total atom count, which PyTDC 0.3.6 reads from the canonical SMILES text."""
    target = _formula_counts(formula)
    scores = [_gaussian(_atom_count(mol, element), count, 1.0) for element, count in target]
    text_total = sum(count for _, count in _formula_counts(Chem.MolToSmiles(mol)))
    scores.append(_gaussian(text_total, sum(count for _, count in target), 2.0))
    return _geometric_mean(scores)


# --- the tasks --------------------------------------------------------------------------------

CELECOXIB = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"
TROGLITAZONE = "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O"
THIOTHIXENE = "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1"
ALBUTEROL = "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1"
MESTRANOL = "COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1"
CAMPHOR, MENTHOL = "CC1(C)C2CCC1(C)C(=O)C2", "CC(C)C1CCC(C)CC1O"
TADALAFIL = "O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C"
SILDENAFIL = "CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C"
OSIMERTINIB = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34"
FEXOFENADINE = "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4"
RANOLAZINE = "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2"
PERINDOPRIL = "O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC"
AMLODIPINE = r"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC"
SITAGLIPTIN = "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F"
SITAGLIPTIN_VALSARTAN = "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F"  # valsartan_smarts's property target
ZALEPLON = "O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1"
HOP_START = "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C"  # deco_hop and scaffold_hop
HOP_SCAFFOLD = "[#7]-c1n[c;h1]nc2[c;h1]c(-[#8])[c;h0][c;h1]c12"


def qed(mol: Chem.Mol) -> float:
    return Descriptors.qed(mol)


def celecoxib_rediscovery(mol: Chem.Mol) -> float:
    return _similarity(mol, CELECOXIB, "ECFP4")


def troglitazone_rediscovery(mol: Chem.Mol) -> float:
    return _similarity(mol, TROGLITAZONE, "ECFP4")


def thiothixene_rediscovery(mol: Chem.Mol) -> float:
    return _similarity(mol, THIOTHIXENE, "ECFP4")


def albuterol_similarity(mol: Chem.Mol) -> float:
    return _clipped(_similarity(mol, ALBUTEROL, "FCFP4"), 0.75)


def mestranol_similarity(mol: Chem.Mol) -> float:
    return _clipped(_similarity(mol, MESTRANOL, "AP"), 0.75)


def isomers_c7h8n2o2(mol: Chem.Mol) -> float:
    return _isomer_score(mol, "C7H8N2O2")


def isomers_c9h10n2o2pf2cl(mol: Chem.Mol) -> float:
    return _isomer_score(mol, "C9H10N2O2PF2Cl")


def median1(mol: Chem.Mol) -> float:
    return _geometric_mean([_similarity(mol, MENTHOL, "ECFP4"), _similarity(mol, CAMPHOR, "ECFP4")])


def median2(mol: Chem.Mol) -> float:
    return _geometric_mean([_similarity(mol, TADALAFIL, "ECFP6"), _similarity(mol, SILDENAFIL, "ECFP6")])


def osimertinib_mpo(mol: Chem.Mol) -> float:
    return _geometric_mean([
        _clipped(_similarity(mol, OSIMERTINIB, "FCFP4"), 0.8),
        _min_gaussian(_similarity(mol, OSIMERTINIB, "ECFP6"), 0.85, 0.1),
        _max_gaussian(Descriptors.TPSA(mol), 100, 10),
        _min_gaussian(Descriptors.MolLogP(mol), 1, 1),
    ])


def fexofenadine_mpo(mol: Chem.Mol) -> float:
    return _geometric_mean([
        _clipped(_similarity(mol, FEXOFENADINE, "AP"), 0.8),
        _max_gaussian(Descriptors.TPSA(mol), 90, 10),
        _min_gaussian(Descriptors.MolLogP(mol), 4, 1),
    ])


def ranolazine_mpo(mol: Chem.Mol) -> float:
    return _geometric_mean([
        _clipped(_similarity(mol, RANOLAZINE, "AP"), 0.7),
        _max_gaussian(Descriptors.MolLogP(mol), 7, 1),
        _gaussian(_atom_count(mol, "F"), 1, 1.0),
        _max_gaussian(Descriptors.TPSA(mol), 95, 20),
    ])


def perindopril_mpo(mol: Chem.Mol) -> float:
    rings = rdMolDescriptors.CalcNumAromaticRings(mol)
    return _geometric_mean([_similarity(mol, PERINDOPRIL, "ECFP4"), _gaussian(rings, 2, 0.5)])


def amlodipine_mpo(mol: Chem.Mol) -> float:
    rings = rdMolDescriptors.CalcNumRings(mol)
    return _geometric_mean([_similarity(mol, AMLODIPINE, "ECFP4"), _gaussian(rings, 3, 0.5)])


def sitagliptin_mpo(mol: Chem.Mol) -> float:
    target_logp, target_tpsa, _ = _descriptors_of(SITAGLIPTIN)
    return _geometric_mean([
        _gaussian(_similarity(mol, SITAGLIPTIN, "ECFP4"), 0, 0.1),
        _gaussian(Descriptors.MolLogP(mol), target_logp, 0.2),
        _gaussian(Descriptors.TPSA(mol), target_tpsa, 5),
        _isomer_score(mol, "C16H15F6N5O"),
    ])


def zaleplon_mpo(mol: Chem.Mol) -> float:
    return _geometric_mean([_similarity(mol, ZALEPLON, "ECFP4"), _isomer_score(mol, "C19H17N3O2")])


def valsartan_smarts(mol: Chem.Mol) -> float:
    target_logp, target_tpsa, target_bertz = _descriptors_of(SITAGLIPTIN_VALSARTAN)
    return _geometric_mean([
        _has(mol, "CN(C=O)Cc1ccc(c2ccccc2)cc1"),
        _gaussian(Descriptors.MolLogP(mol), target_logp, 0.2),
        _gaussian(Descriptors.TPSA(mol), target_tpsa, 5),
        _gaussian(Descriptors.BertzCT(mol), target_bertz, 30),
    ])


def deco_hop(mol: Chem.Mol) -> float:
    return _arithmetic_mean([
        _clipped(_similarity(mol, HOP_START, "PHCO"), 0.85),
        1.0 - _has(mol, "CS([#6])(=O)=O"),  # change the decorations ...
        1.0 - _has(mol, "[#7]-c1ccc2ncsc2c1"),
        _has(mol, HOP_SCAFFOLD),  # ... keep the scaffold
    ])


def scaffold_hop(mol: Chem.Mol) -> float:
    return _arithmetic_mean([
        _clipped(_similarity(mol, HOP_START, "PHCO"), 0.75),
        _has(mol, "[#6]-[#6]-[#6]-[#8]-[#6]~[#6]~[#6]~[#6]~[#6]-[#7]-c1ccc2ncsc2c1"),  # keep the decorations ...
        1.0 - _has(mol, HOP_SCAFFOLD),  # ... change the scaffold
    ])


# The 20 tasks in PMO's order (its table, less drd2, gsk3b and jnk3).
PMO_SCORERS: dict[str, Scorer] = {
    "pmo:qed": qed,
    "pmo:celecoxib_rediscovery": celecoxib_rediscovery,
    "pmo:troglitazone_rediscovery": troglitazone_rediscovery,
    "pmo:thiothixene_rediscovery": thiothixene_rediscovery,
    "pmo:albuterol_similarity": albuterol_similarity,
    "pmo:mestranol_similarity": mestranol_similarity,
    "pmo:isomers_c7h8n2o2": isomers_c7h8n2o2,
    "pmo:isomers_c9h10n2o2pf2cl": isomers_c9h10n2o2pf2cl,
    "pmo:median1": median1,
    "pmo:median2": median2,
    "pmo:osimertinib_mpo": osimertinib_mpo,
    "pmo:fexofenadine_mpo": fexofenadine_mpo,
    "pmo:ranolazine_mpo": ranolazine_mpo,
    "pmo:perindopril_mpo": perindopril_mpo,
    "pmo:amlodipine_mpo": amlodipine_mpo,
    "pmo:sitagliptin_mpo": sitagliptin_mpo,
    "pmo:zaleplon_mpo": zaleplon_mpo,
    "pmo:valsartan_smarts": valsartan_smarts,
    "pmo:deco_hop": deco_hop,
    "pmo:scaffold_hop": scaffold_hop,
}

# The task names without the prefix, as PMO writes them.
PMO_TASKS: tuple[str, ...] = tuple(name.removeprefix(PMO_PREFIX) for name in PMO_SCORERS)


def pmo_name(task: str) -> str:
    """The objective name of a PMO task given with or without its ``pmo:`` prefix.

    >>> pmo_name("zaleplon_mpo"), pmo_name("pmo:qed")
    ('pmo:zaleplon_mpo', 'pmo:qed')
    >>> pmo_name("drd2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown PMO task 'drd2'; choose from qed, ..., scaffold_hop (drd2, gsk3b and jnk3 need ...)
    """
    name = task if task.startswith(PMO_PREFIX) else PMO_PREFIX + task
    if name not in PMO_SCORERS:
        raise ValueError(f"unknown PMO task {task!r}; choose from {', '.join(PMO_TASKS)} (drd2, gsk3b and jnk3 "
                         "need TDC's trained classifiers, which molvae cannot download)")
    return name
