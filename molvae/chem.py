"""The one place that touches RDKit and SELFIES.

Parsing, standardization, canonicalization, SELFIES encoding/decoding, fingerprints and a
plain ``name -> function`` table of molecular properties. Bad chemistry is data: every
function here returns ``None`` (or a reason code) for a molecule it cannot handle and
raises only on programming errors such as a wrong argument type.

>>> canonical_smiles("OCC")
'CCO'
>>> canonical_smiles("not a molecule") is None
True
>>> decode_selfies(encode_selfies("c1ccccc1O"))
'Oc1ccccc1'
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import selfies as sf
from rdkit import Chem, DataStructs, RDLogger, rdBase
from rdkit.Chem import QED, Crippen, Descriptors, FilterCatalog, Lipinski, rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize
from rdkit.Chem.rdFingerprintGenerator import GetMorganGenerator
from rdkit.Contrib.SA_Score import sascorer

from molvae.parallel import ChunkMapper

__all__ = [
    "ORGANIC_ELEMENTS",
    "PROPERTIES",
    "SELFIES_CONSTRAINTS",
    "StandardizeOptions",
    "canonical_smiles",
    "clean_smiles",
    "clean_smiles_list",
    "decode_selfies",
    "decode_selfies_list",
    "encode_selfies",
    "morgan_fingerprint",
    "penalized_logp",
    "penalized_logp_raw",
    "property_rows",
    "property_table",
    "ring_sizes",
    "ring_sizes_in",
    "sa_score",
    "split_selfies",
    "standardize",
    "tanimoto",
    "to_mol",
    "without_rdkit_log",
]

# SELFIES's semantic-constraint preset that molvae always uses. Recorded in every checkpoint
# so a model is never decoded under different valence rules than it was trained with.
SELFIES_CONSTRAINTS = "default"

# Elements a drug-like generative model is trained on; anything else is rejected with a reason.
ORGANIC_ELEMENTS = frozenset({"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I"})


@contextlib.contextmanager
def without_rdkit_log() -> Iterator[None]:
    """Silence RDKit's logger inside the block and restore each level's previous state after it."""
    previous = dict(line.split(":", 1) for line in rdBase.LogStatus().splitlines() if ":" in line)
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        for level, state in previous.items():
            if state == "enabled":
                RDLogger.EnableLog(level)


def to_mol(smiles: str | None) -> Chem.Mol | None:
    """Parse SMILES into a sanitized molecule; ``None`` for empty, unparsable or zero-atom input.

    >>> to_mol("") is None, to_mol("C1CC") is None, to_mol("CC").GetNumAtoms()
    (True, True, 2)
    """
    if smiles is None:
        return None
    if not isinstance(smiles, str):
        raise TypeError(f"SMILES must be str, got {type(smiles).__name__}")
    if not smiles.strip():
        return None
    with without_rdkit_log():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def canonical_smiles(smiles: str | None, isomeric: bool = True) -> str | None:
    """RDKit canonical SMILES, or ``None`` when the input is not a valid non-empty molecule."""
    mol = to_mol(smiles)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=isomeric)


@dataclass(frozen=True)
class StandardizeOptions:
    """How raw input molecules are cleaned before training."""

    max_smiles_chars: int = 500  # longer strings are rejected before RDKit spends time on them
    max_heavy_atoms: int = 80  # drug-like molecules are far smaller; bigger ones are outliers
    allowed_elements: frozenset[str] = ORGANIC_ELEMENTS  # anything else (metals, ...) is rejected
    isomeric: bool = True  # keep stereochemistry in the canonical SMILES
    neutralize: bool = True  # uncharge acids/bases where a neutral form exists


# Spreadsheet and pandas spellings of a missing value.
_MISSING_MARKERS = frozenset({"nan", "na", "n/a", "null", "none", "#n/a"})

_LARGEST_FRAGMENT = rdMolStandardize.LargestFragmentChooser(preferOrganic=True)
_UNCHARGER = rdMolStandardize.Uncharger()


def standardize(smiles: object, options: StandardizeOptions = StandardizeOptions()) -> tuple[str | None, str | None]:
    """Clean one input SMILES; return ``(canonical_smiles, None)`` or ``(None, reason)``.

    Steps: parse (RDKit's sanitization already normalizes nitro groups and similar), keep the
    largest organic fragment (drops salts, solvents and counter-ions), optionally neutralize,
    check size, elements and radicals, canonicalize. Reason codes: ``empty``, ``not_text``,
    ``too_long``, ``unparsable``, ``wildcard``, ``too_many_atoms``, ``disallowed_element``, ``radical``.

    >>> standardize("[Na+].[O-]C(=O)c1ccccc1")
    ('O=C(O)c1ccccc1', None)
    >>> standardize("C*")
    (None, 'wildcard')
    >>> standardize("   ")
    (None, 'empty')
    """
    if smiles is None or (isinstance(smiles, float) and math.isnan(smiles)):
        return None, "empty"
    if not isinstance(smiles, str):
        return None, "not_text"
    text = smiles.strip()
    if not text or text.lower() in _MISSING_MARKERS:
        return None, "empty"
    if len(text) > options.max_smiles_chars:
        return None, "too_long"
    if "\ufffd" in text:  # a byte that was not valid UTF-8 in the input file
        return None, "unparsable"
    with without_rdkit_log():
        mol = Chem.MolFromSmiles(text)
        if mol is None or mol.GetNumAtoms() == 0:
            return None, "unparsable"
        if any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms()):
            return None, "wildcard"
        # The text tells cheaply whether there are fragments or charges to deal with at all.
        try:
            if "." in text:
                mol = _LARGEST_FRAGMENT.choose(mol)
            if options.neutralize and ("+" in text or "-" in text):
                mol = _UNCHARGER.uncharge(mol)
        except (RuntimeError, ValueError):
            return None, "unparsable"
    if mol.GetNumHeavyAtoms() > options.max_heavy_atoms:
        return None, "too_many_atoms"
    if any(atom.GetSymbol() not in options.allowed_elements for atom in mol.GetAtoms()):
        return None, "disallowed_element"
    if any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
        return None, "radical"
    canonical = Chem.MolToSmiles(mol, isomericSmiles=options.isomeric)
    return (canonical, None) if canonical else (None, "unparsable")


def ring_sizes(smiles: str | None) -> frozenset[int]:
    """Sizes of the rings RDKit perceives in a molecule (empty for none, or for unparsable input).

    >>> sorted(ring_sizes("C1CC1c1ccccc1")), sorted(ring_sizes("CCO"))
    ([3, 6], [])
    """
    mol = to_mol(smiles)
    return frozenset() if mol is None else frozenset(len(ring) for ring in mol.GetRingInfo().AtomRings())


def ring_sizes_union(smiles: list[str]) -> frozenset[int]:
    """Every ring size of the molecules ``smiles`` (a picklable unit of work for worker processes)."""
    return frozenset().union(*(ring_sizes(s) for s in smiles))


def ring_sizes_in(smiles: Sequence[str], workers: int | None = 0) -> list[int]:
    """The ring sizes that occur in a set of molecules, sorted: what a checkpoint records of its
    training molecules so that sampling can leave out molecules with a ring size they never have.

    >>> ring_sizes_in(["C1CC1", "c1ccccc1", "CCO"], workers=1)
    [3, 6]
    """
    with ChunkMapper(workers) as mapper:
        parts = mapper.map(ring_sizes_union, smiles, min_parallel=20000, max_chunk=5000)
    return sorted(frozenset().union(*parts))


def encode_selfies(smiles: str) -> str | None:
    """SELFIES for a (standardized) SMILES, or ``None`` when SELFIES cannot encode it."""
    try:
        return sf.encoder(smiles)
    except sf.EncoderError:
        return None


def decode_selfies(selfies: str) -> str | None:
    """Canonical SMILES for a SELFIES string; ``None`` when it decodes to nothing valid.

    >>> decode_selfies("") is None
    True
    """
    try:
        smiles = sf.decoder(selfies)
    except sf.DecoderError:
        return None
    return canonical_smiles(smiles) if smiles else None


def split_selfies(selfies: str) -> list[str]:
    """SELFIES symbols of a string.

    >>> split_selfies("[C][=O]")
    ['[C]', '[=O]']
    """
    return list(sf.split_selfies(selfies))


def clean_smiles(smiles: object, options: StandardizeOptions, max_tokens: int) -> tuple[str | None, str | None, str | None, str]:
    """``(canonical, selfies, reason, detail)`` for one input SMILES: :func:`standardize`, then a
    SELFIES encoding of at most ``max_tokens`` symbols that decodes back to the same molecule.
    ``reason`` is None when kept (the data-set-level ``duplicate`` and ``unknown_token`` checks
    come later).

    >>> clean_smiles("OCC", StandardizeOptions(), max_tokens=10)
    ('CCO', '[C][C][O]', None, '')
    >>> clean_smiles("CCCCCC", StandardizeOptions(), max_tokens=3)[2:]
    ('too_long', '6 SELFIES symbols > max_tokens=3')
    """
    canonical, reason = standardize(smiles, options)
    if canonical is None:
        return None, None, reason, ""
    selfies = encode_selfies(canonical)
    if selfies is None:
        return canonical, None, "selfies_encoding_failed", ""
    n_tokens = len(split_selfies(selfies))
    if n_tokens > max_tokens:
        return canonical, None, "too_long", f"{n_tokens} SELFIES symbols > max_tokens={max_tokens}"
    roundtrip = decode_selfies(selfies)
    # Both sides canonical; RDKit canonicalization is idempotent but for rare cases, hence the retry.
    if roundtrip != canonical and roundtrip != canonical_smiles(canonical):
        return canonical, None, "selfies_roundtrip_mismatch", f"decodes to {roundtrip}"
    return canonical, selfies, None, ""


def clean_smiles_list(smiles: list[object], options: StandardizeOptions,
                      max_tokens: int) -> list[tuple[str | None, str | None, str | None, str]]:
    """:func:`clean_smiles` of each item (a picklable unit of work for worker processes)."""
    return [clean_smiles(s, options, max_tokens) for s in smiles]


def decode_selfies_list(selfies: list[str]) -> list[str | None]:
    """:func:`decode_selfies` of each item (a picklable unit of work for worker processes)."""
    return [decode_selfies(s) for s in selfies]


def decode_selfies_checked(selfies: str) -> tuple[str | None, bool]:
    """``(canonical SMILES or None, is_canonical)``: whether ``selfies`` is exactly the SELFIES of its
    own molecule's canonical SMILES, i.e. the form every training string has. A generated string
    that is not (a symbol SELFIES had to repair or skip, atoms in a non-canonical order) is one no
    training molecule looks like: the SELFIES counterpart of an invalid SMILES.

    >>> decode_selfies_checked("[C][C][O]")
    ('CCO', True)
    >>> decode_selfies_checked("[O][C][C]")  # ethanol, but not in canonical order
    ('CCO', False)
    >>> decode_selfies_checked("[C][=O][C]")  # the oxygen has no valence left: SELFIES drops the last carbon
    ('C=O', False)
    """
    canonical = decode_selfies(selfies)
    return canonical, canonical is not None and encode_selfies(canonical) == selfies


def decode_selfies_checked_list(selfies: list[str]) -> list[tuple[str | None, bool]]:
    """:func:`decode_selfies_checked` of each item (a picklable unit of work for worker processes)."""
    return [decode_selfies_checked(s) for s in selfies]


# --- fingerprints ---------------------------------------------------------------------------

_MORGAN_BITS = 2048
_MORGAN = GetMorganGenerator(radius=2, fpSize=_MORGAN_BITS)
_MORGAN_WORDS = _MORGAN_BITS // 64  # uint64 words of a packed fingerprint (morgan_words)


def morgan_fingerprint(mol: Chem.Mol) -> DataStructs.ExplicitBitVect:
    """Morgan (ECFP4-like) bit fingerprint, radius 2, 2048 bits."""
    return _MORGAN.GetFingerprint(mol)


def morgan_words(mol: Chem.Mol) -> np.ndarray:
    """:func:`morgan_fingerprint`'s bits packed into 32 words (32,) uint64, for :class:`FingerprintIndex`."""
    return np.frombuffer(bytes.fromhex(DataStructs.BitVectToFPSText(_MORGAN.GetFingerprint(mol))), dtype=np.uint64)


class FingerprintIndex:
    """A growing set of packed fingerprints (:func:`morgan_words`) and the Tanimoto similarities of one
    fingerprint to all of them at once: RDKit's ``BulkTanimotoSimilarity`` to the last bit (the same
    integer counts, one division; 0 where both are empty), in under half its time.

    >>> index = FingerprintIndex()
    >>> for smiles in ("CCO", "CCCO", "c1ccccc1"):
    ...     index.add(morgan_words(to_mol(smiles)))
    >>> [round(s, 3) for s in index.similarity(morgan_words(to_mol("CCO"))).tolist()]
    [1.0, 0.556, 0.0]
    """

    def __init__(self):
        self._size = 0
        self._grow(256)

    def _grow(self, capacity: int) -> None:
        words = np.empty((capacity, _MORGAN_WORDS), dtype=np.uint64)  # (capacity, W)
        counts = np.empty(capacity, dtype=np.int64)  # on-bits of each
        if self._size:
            words[: self._size], counts[: self._size] = self._words[: self._size], self._counts[: self._size]
        self._words, self._counts = words, counts
        self._common = np.empty_like(words)  # scratch for similarity()
        self._common_bits = np.empty(words.shape, dtype=np.uint8)

    def __len__(self) -> int:
        return self._size

    def add(self, words: np.ndarray) -> None:
        if self._size == len(self._counts):
            self._grow(2 * self._size)
        self._words[self._size] = words
        self._counts[self._size] = np.bitwise_count(words).sum()
        self._size += 1

    def similarity(self, words: np.ndarray) -> np.ndarray:
        """Tanimoto similarity (N,) float64 of ``words`` to each fingerprint, in the order added."""
        n = self._size
        both = np.bitwise_and(self._words[:n], words, out=self._common[:n])  # (N, W)
        common = np.bitwise_count(both, out=self._common_bits[:n]).sum(axis=1, dtype=np.int64)  # (N,)
        union = self._counts[:n] + int(np.bitwise_count(words).sum()) - common  # (N,)
        return np.divide(common, union, out=np.zeros(n), where=union > 0)


def tanimoto(mol_a: Chem.Mol, mol_b: Chem.Mol) -> float:
    """Tanimoto similarity of the Morgan fingerprints of two molecules.

    >>> round(tanimoto(to_mol("CCO"), to_mol("CCO")), 3)
    1.0
    """
    return DataStructs.TanimotoSimilarity(morgan_fingerprint(mol_a), morgan_fingerprint(mol_b))


# --- properties -----------------------------------------------------------------------------

def sa_score(mol: Chem.Mol) -> float:
    """Synthetic accessibility (Ertl & Schuffenhauer), 1 (easy) to 10 (hard); kept on the molecule
    (a private property) so that penalized logP beside it does not compute it again.

    >>> mol = Chem.MolFromSmiles("c1ccccc1O")
    >>> sa_score(mol) == sa_score(mol) == float(sascorer.calculateScore(mol)) and bool(mol.HasProp("_molvae_sa"))
    True
    """
    if not mol.HasProp("_molvae_sa"):
        mol.SetDoubleProp("_molvae_sa", float(sascorer.calculateScore(mol)))
    return mol.GetDoubleProp("_molvae_sa")


# ZINC250k statistics used by the JT-VAE definition of penalized logP.
_LOGP_MEAN, _LOGP_STD = 2.4570953396190123, 1.434324401111988
_SA_MEAN, _SA_STD = -3.0525811293166134, 0.8335207024513095
_CYCLE_MEAN, _CYCLE_STD = -0.0485696876403053, 0.2860212110245455


def largest_ring_size(mol: Chem.Mol) -> int:
    """Size of the largest ring in RDKit's ring set (0 for acyclic molecules)."""
    return max((len(ring) for ring in mol.GetRingInfo().AtomRings()), default=0)


def _plogp_terms(mol: Chem.Mol) -> tuple[float, float, float]:
    """logP, -SA and -(long-cycle penalty): the three terms of penalized logP."""
    return Crippen.MolLogP(mol), -sa_score(mol), -float(max(largest_ring_size(mol) - 6, 0))


def penalized_logp(mol: Chem.Mol) -> float:
    """Penalized logP, the JT-VAE definition: logP - SA - long-cycle penalty, each term
    normalized with the ZINC250k mean and standard deviation (the scale of JT-VAE's BO table).

    >>> round(penalized_logp(to_mol("COc1cc2c(cc1OC)CC([NH3+])C2")), 3)
    -1.094
    """
    log_p, sa, cycle = _plogp_terms(mol)
    return (
        (log_p - _LOGP_MEAN) / _LOGP_STD
        + (sa - _SA_MEAN) / _SA_STD
        + (cycle - _CYCLE_MEAN) / _CYCLE_STD
    )


def penalized_logp_raw(mol: Chem.Mol) -> float:
    """Unnormalized penalized logP, logP - SA - long-cycle penalty: the scale of the
    constrained-optimization results of JT-VAE and GCPN and of LIMO's table. (The start values
    listed in JT-VAE's ``opt_test_800.logP-SA.txt`` omit the cycle term; they agree with this
    function for the molecules without a ring larger than six.)

    >>> round(penalized_logp_raw(to_mol("COc1cc2c(cc1OC)CC([NH3+])C2")), 3)
    -2.505
    """
    return sum(_plogp_terms(mol))


PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "qed": QED.qed,
    "logp": Crippen.MolLogP,
    "sa": sa_score,
    "plogp": penalized_logp,
    "plogp_raw": penalized_logp_raw,
    "mw": Descriptors.MolWt,
    "tpsa": rdMolDescriptors.CalcTPSA,
    "hbd": Lipinski.NumHDonors,
    "hba": Lipinski.NumHAcceptors,
    "rotb": rdMolDescriptors.CalcNumRotatableBonds,
    "rings": rdMolDescriptors.CalcNumRings,
    "heavy_atoms": Chem.Mol.GetNumHeavyAtoms,
}
"""Molecular properties by name; each takes a sanitized RDKit molecule and returns a number."""

# Properties written next to every generated molecule.
REPORT_PROPERTIES = ("qed", "logp", "sa", "mw", "tpsa")


def compute_properties(mol: Chem.Mol, names: tuple[str, ...] | list[str] = REPORT_PROPERTIES) -> dict[str, float]:
    """Selected :data:`PROPERTIES` of one molecule.

    >>> compute_properties(to_mol("CCO"), ["heavy_atoms"])
    {'heavy_atoms': 3.0}
    """
    return {name: float(PROPERTIES[name](mol)) for name in names}


def property_rows(smiles: Sequence[str], names: Sequence[str]) -> list[list[float]]:
    """:data:`PROPERTIES` ``names`` of each SMILES, one row per molecule (NaN where it does not parse);
    a plain function of a list, so that a process pool can map it over chunks.

    >>> property_rows(["CCO", "C1CC"], ["heavy_atoms"])
    [[3.0], [nan]]
    """
    rows = []
    for text in smiles:
        mol = to_mol(text)
        rows.append([float(PROPERTIES[name](mol)) if mol is not None else math.nan for name in names])
    return rows


def property_table(smiles: Sequence[str], names: Sequence[str], workers: int | None = 0,
                   progress: str | None = None) -> list[list[float]]:
    """:func:`property_rows` of many SMILES, in ``workers`` processes for large inputs (0 = one per core)."""
    with ChunkMapper(workers) as mapper:
        return mapper.flat_map(functools.partial(property_rows, names=list(names)), smiles, min_parallel=5000,
                               progress=progress)


# --- structural alerts ----------------------------------------------------------------------

_PAINS: FilterCatalog.FilterCatalog | None = None


def has_pains_alert(mol: Chem.Mol) -> bool:
    """Whether the molecule matches any PAINS (A, B or C) substructure alert."""
    global _PAINS  # lazily built cache of an immutable catalogue, not behaviour-changing state
    if _PAINS is None:
        params = FilterCatalog.FilterCatalogParams()
        params.AddCatalog(FilterCatalog.FilterCatalogParams.FilterCatalogs.PAINS)
        _PAINS = FilterCatalog.FilterCatalog(params)
    return _PAINS.HasMatch(mol)
