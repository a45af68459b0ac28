"""The chemistry layer: standardization, SELFIES round trips (hypothesis), properties."""

from __future__ import annotations

import pandas as pd
import selfies as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from molvae.chem import (
    PROPERTIES,
    canonical_smiles,
    decode_selfies,
    encode_selfies,
    standardize,
    to_mol,
    without_rdkit_log,
)

from .conftest import ASPIRIN, INVALID, MOLECULES_CSV

FIXTURE_SMILES = pd.read_csv(MOLECULES_CSV)["SMILES"].tolist()
ALPHABET = sorted(sf.get_semantic_robust_alphabet())


def test_standardize_fixture_round_trips_through_selfies():
    for smiles in FIXTURE_SMILES:
        canonical, reason = standardize(smiles)
        assert reason is None, (smiles, reason)
        assert decode_selfies(encode_selfies(canonical)) == canonical



@given(st.lists(st.sampled_from(ALPHABET), max_size=40))
@settings(max_examples=200, deadline=None)
def test_any_selfies_decodes_to_valid_smiles_or_none(symbols):
    smiles = decode_selfies("".join(symbols))
    assert smiles is None or to_mol(smiles) is not None
    if smiles is not None:  # decoding is deterministic and canonical
        assert canonical_smiles(smiles) == smiles


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_standardize_never_raises_on_text(text):
    canonical, reason = standardize(text)
    assert (canonical is None) != (reason is None)


def test_standardize_reasons():
    assert standardize(INVALID) == (None, "unparsable")
    assert standardize(None) == (None, "empty")
    assert standardize(float("nan")) == (None, "empty")
    assert standardize("NaN") == (None, "empty")
    assert standardize(42) == (None, "not_text")
    assert standardize("C" * 10_000) == (None, "too_long")
    assert standardize("[Pt]") == (None, "disallowed_element")
    assert standardize("[CH3]") == (None, "radical")
    assert standardize("CC(=O)[O-].[K+]") == ("CC(=O)O", None)


def test_empty_and_zero_atom_are_invalid():
    assert to_mol("") is None
    assert decode_selfies("") is None
    assert canonical_smiles("[nop]") is None


def test_aspirin_properties():
    mol = to_mol(ASPIRIN)
    assert round(PROPERTIES["qed"](mol), 4) == 0.5501
    assert round(PROPERTIES["mw"](mol), 2) == 180.16
    assert PROPERTIES["hbd"](mol) == 1
    assert PROPERTIES["rings"](mol) == 1


def test_without_rdkit_log_restores_state():
    from rdkit import rdBase

    before = rdBase.LogStatus()
    with without_rdkit_log():
        assert to_mol("C1CC") is None
    assert rdBase.LogStatus() == before


def test_the_fingerprint_index_gives_rdkits_tanimoto_to_the_last_bit():
    """Packed words and popcounts give the same integer counts as RDKit, then one division: equal floats.
    600 molecules also grow the index past its first capacity."""
    from rdkit import DataStructs

    from molvae import BUNDLED_DATA
    from molvae.chem import FingerprintIndex, morgan_fingerprint, morgan_words, to_mol

    smiles = pd.read_csv(BUNDLED_DATA, nrows=600)["SMILES"].tolist()
    mols = [to_mol(s) for s in smiles]
    index = FingerprintIndex()
    for mol in mols:
        index.add(morgan_words(mol))
    assert len(index) == 600
    bit_vectors = [morgan_fingerprint(mol) for mol in mols]
    for i in (0, 17, 599):
        assert index.similarity(morgan_words(mols[i])).tolist() == DataStructs.BulkTanimotoSimilarity(
            bit_vectors[i], bit_vectors)
    empty = FingerprintIndex()
    empty.add(morgan_words(to_mol("[He]")) * 0)  # no bits on either side: 0, as RDKit says
    assert empty.similarity(morgan_words(to_mol("[He]")) * 0).tolist() == [0.0]
