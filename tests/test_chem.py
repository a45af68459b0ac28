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
