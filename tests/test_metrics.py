"""Metric edge cases, pinned by hand from the MOSES definitions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from molvae.metrics import evaluate_samples, internal_diversity, novelty, property_summary, uniqueness, validity

from .conftest import ASPIRIN, CAFFEINE, ETHANOL, INVALID


def test_validity_counts_empty_none_and_unparsable_as_invalid():
    assert validity([]) == 0.0
    assert validity([None, "", INVALID, "[nop]"]) == 0.0
    assert validity([ETHANOL, INVALID]) == 0.5
    assert validity([ETHANOL, "OCC", ASPIRIN]) == 1.0


def test_uniqueness_is_over_valid_canonical_molecules():
    assert uniqueness([]) == 0.0
    assert uniqueness([INVALID, None]) == 0.0
    assert uniqueness([ETHANOL, "OCC", "C(O)C"]) == pytest.approx(1 / 3)  # one molecule, three spellings
    assert uniqueness([ETHANOL, INVALID, ASPIRIN]) == 1.0
    with pytest.warns(UserWarning, match="unique@1000 computed on 2 valid"):
        assert uniqueness([ETHANOL, ASPIRIN], k=1000) == 1.0
    assert uniqueness([ETHANOL, ETHANOL, ASPIRIN, CAFFEINE], k=2) == 0.5


def test_novelty_canonicalizes_both_sides():
    assert novelty([], ["C"]) == 0.0
    assert novelty([INVALID], ["C"]) == 0.0
    assert novelty(["OCC", "CCO", ASPIRIN], training=["C(C)O"]) == 0.5  # {ethanol, aspirin}: 1 of 2 new
    assert novelty([ASPIRIN], training=[]) == 1.0


def test_internal_diversity_pinned():
    assert internal_diversity([]) == 0.0
    assert internal_diversity([ETHANOL, ETHANOL]) == 0.0
    # Two molecules with Tanimoto similarity s: pairs (1, s, s, 1) -> 1 - (2 + 2s) / 4 = (1 - s) / 2
    from rdkit import DataStructs
    from rdkit.Chem.rdFingerprintGenerator import GetMorganGenerator

    from molvae.chem import to_mol

    morgan = GetMorganGenerator(radius=2, fpSize=1024)
    s = DataStructs.TanimotoSimilarity(morgan.GetFingerprint(to_mol(ASPIRIN)), morgan.GetFingerprint(to_mol(CAFFEINE)))
    assert internal_diversity([ASPIRIN, CAFFEINE]) == pytest.approx((1 - s) / 2)
    assert internal_diversity([ASPIRIN, CAFFEINE], p=2) == pytest.approx(1 - math.sqrt((2 + 2 * s**2) / 4))


def test_property_summary_and_table():
    assert property_summary([], ["mw"]) == {"mw_mean": 0.0, "mw_std": 0.0}
    summary = property_summary(["C", "CCC"], ["heavy_atoms"])
    assert summary == {"heavy_atoms_mean": 2.0, "heavy_atoms_std": 1.0}
    table = evaluate_samples([ETHANOL, INVALID, ASPIRIN, ASPIRIN], training=[ASPIRIN])
    assert table["validity"] == 0.75 and table["uniqueness"] == pytest.approx(2 / 3) and table["novelty"] == 0.5
    assert "unique@1k" not in table  # only reported when there are 1,000 valid molecules
    empty = evaluate_samples([], training=[])
    assert empty["validity"] == 0.0 and empty["novelty"] == 0.0 and empty["int_div"] == 0.0


def test_property_means_cover_every_sample_when_the_caller_has_them(trained_run):
    from molvae.chem import sa_score, to_mol

    smiles = [ETHANOL, ASPIRIN, CAFFEINE]
    sa = [sa_score(to_mol(s)) for s in smiles]
    head_only = evaluate_samples(smiles, diversity_sample=1)
    assert head_only["sa_mean"] == pytest.approx(sa[0])  # without them: the first diversity_sample molecules
    every = evaluate_samples(smiles, diversity_sample=1, properties={"sa": sa})
    assert every["sa_mean"] == pytest.approx(sum(sa) / 3) and every["int_div"] == head_only["int_div"]
    # `molvae train` / `molvae sample` report the means of the CSV they write
    table = pd.read_csv(trained_run.out_dir / "samples.csv")
    valid = table[table["valid"]]
    for name in ("qed", "sa", "mw"):
        assert trained_run.sample_metrics[f"{name}_mean"] == pytest.approx(valid[name].mean())
