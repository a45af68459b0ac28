"""The MOSES metric table, pinned on tiny inputs: by hand, by definition, and against MOSES's own
unit test (molsets 0.3.1, tests/test_metrics.py). Offline: only the ``slow`` test downloads."""

from __future__ import annotations

import gzip
import hashlib
import math
import subprocess
import warnings

import numpy as np
import pytest

from molvae import moses
from molvae.chem import PROPERTIES, to_mol
from molvae.moses import (
    MOSES_SHA256,
    MOSES_SPLITS,
    ReferenceStats,
    cosine_similarity,
    fetch_moses,
    moses_reference_stats,
    fragments,
    frechet_distance,
    load_moses,
    moses_metrics,
    passes_filters,
    reference_stats,
    scaffold,
    training_set,
)

# MOSES's own unit test: two test molecules, three scaffold-test molecules, six generated ones
# (two of them invalid under RDKit: 'INVALID' and the pentavalent-oxygen last one).
MOSES_TEST = ["Oc1ccccc1-c1cccc2cnccc12", "COc1cccc(NC(=O)Cc2coc3ccc(OC)cc23)c1"]
MOSES_TEST_SF = ["COCc1nnc(NC(=O)COc2ccc(C(C)(C)C)cc2)s1", "O=C(C1CC2C=CC1C2)N1CCOc2ccccc21",
                 "Nc1c(Br)cccc1C(=O)Nc1ccncn1"]
MOSES_GEN = ["CNC", "Oc1ccccc1-c1cccc2cnccc12", "INVALID", "CCCP",
             "Cc1noc(C)c1CN(C)C(=O)Nc1cc(F)cc(F)c1", "Cc1nc(NCc2ccccc2)no1-c1ccccc1"]
# The values MOSES's unit test expects, except SA (see test_sa_is_mosess_code_under_todays_rdkit).
MOSES_EXPECTED = {"valid": 2 / 3, "unique@3": 1.0, "FCD/Test": 52.58371754126664,
                  "SNN/Test": 0.3152585653588176, "Frag/Test": 0.3, "Scaf/Test": 0.5,
                  "IntDiv": 0.7189187309761661, "Filters": 0.75, "logP": 1.63229,
                  "QED": 0.20370891752648637, "weight": 106.87}

ETHANOL, ETHYLAMINE = "CCO", "CCN"
T_ETHANOL_ETHYLAMINE = 1 / 3  # Morgan r=2: 6 bits each, 3 shared (CH3 r0, CH2 r0, CH3 r1): 3 / (6 + 6 - 3)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("moses-cache")


@pytest.fixture(scope="module")
def example(cache_dir):
    """MOSES's unit-test case through the whole table (reference statistics cached on the way)."""
    return moses_metrics(MOSES_GEN, MOSES_TEST, MOSES_TEST_SF, train=MOSES_TEST, k=(3,),
                         device="cpu", n_jobs=1, cache_dir=cache_dir)


# --- per-molecule pieces and small pure functions ------------------------------------------------

def test_cosine_similarity_of_known_count_vectors():
    # (1, 2, 0) . (2, 1, 2) = 4; |(1, 2, 0)| = sqrt(5); |(2, 1, 2)| = 3
    assert cosine_similarity({"a": 1, "b": 2}, {"a": 2, "b": 1, "c": 2}) == pytest.approx(4 / (3 * math.sqrt(5)))
    assert cosine_similarity({"a": 3, "b": 4}, {"a": 6, "b": 8}) == pytest.approx(1.0)
    assert cosine_similarity({"a": 1}, {"b": 1}) == 0.0
    assert cosine_similarity({}, {}) == 0.0


def test_scaffolds_need_two_rings():
    assert scaffold(to_mol("Cc1ccccc1")) is None  # one ring: dropped, as in MOSES
    assert scaffold(to_mol("CCO")) is None
    assert scaffold(to_mol("CCc1ccc(Cc2ccccc2)cc1")) == "c1ccc(Cc2ccccc2)cc1"


def test_brics_fragments():
    assert fragments(to_mol("CCO")) == ["CCO"]  # no BRICS bond
    assert sorted(fragments(to_mol("CCOC(=O)c1ccccc1"))) == ["[1*]C([6*])=O", "[16*]c1ccccc1", "[3*]O[3*]", "[4*]CC"]


@pytest.mark.parametrize(("smiles", "passes"), [
    ("CC(=O)Oc1ccccc1C(=O)O", True),  # aspirin
    ("C1CCCCCC1", True),  # a 7-ring is allowed
    ("C1CCCCCCC1", False),  # MOSES rejects rings of 8 atoms or more
    ("CC[NH3+]", False),  # charged atom
    ("CCP", False),  # phosphorus is not an allowed atom
    ("CCCl", False),  # MCF alert: CH2 next to a halogen
    ("S=C1SC(=Cc2ccccc2)C(=O)N1", False),  # PAINS: ene-rhodanine
])
def test_filters(smiles, passes):
    assert passes_filters(to_mol(smiles)) is passes


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # inside fcd, not ours
def test_frechet_distance_agrees_with_fcd_and_is_zero_on_itself():
    from fcd import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 12)), rng.normal(1.0, 2.0, size=(50, 12))
    moments_a, moments_b = (a.mean(0), np.cov(a.T)), (b.mean(0), np.cov(b.T))
    ours = frechet_distance(*moments_a, *moments_b)
    assert ours == pytest.approx(calculate_frechet_distance(moments_a[0], moments_a[1], moments_b[0], moments_b[1]))
    assert ours > 0
    assert frechet_distance(*moments_a, *moments_a) == pytest.approx(0.0, abs=1e-9)


# --- the whole table -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MOSES_EXPECTED))
def test_matches_moses_unit_test(example, name):
    tolerance = 1e-3 if name.startswith("FCD") else 1e-6  # fcd_torch ran ChemNet in float32
    assert example[name] == pytest.approx(MOSES_EXPECTED[name], abs=tolerance)


def test_sa_is_mosess_code_under_todays_rdkit(example):
    # MOSES's test expects 0.5238335295121783, computed with a 2019 RDKit; MOSES's own sascorer
    # run under today's RDKit gives per-molecule scores identical to RDKit's Contrib sascorer,
    # and this distance.
    sa = PROPERTIES["sa"]
    from scipy.stats import wasserstein_distance

    valid = [s for s in MOSES_GEN if to_mol(s) is not None]
    expected = wasserstein_distance([sa(to_mol(s)) for s in MOSES_TEST], [sa(to_mol(s)) for s in valid])
    assert example["SA"] == pytest.approx(expected)
    assert example["SA"] == pytest.approx(0.6280362203189407)


def test_scaffold_split_and_novelty_by_hand(example):
    # The generated two-ring scaffolds (biphenyl-like, phenyl-isoxazole amide) are none of the
    # scaffold-test set's; 3 of the 4 distinct valid molecules are not in "train" (= MOSES_TEST).
    assert example["Scaf/TestSF"] == 0.0
    assert example["Novelty"] == pytest.approx(3 / 4)
    assert set(example) == {"valid", "unique@3", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test",
                            "FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF", "IntDiv", "IntDiv2",
                            "Filters", "logP", "SA", "QED", "weight", "Novelty"}
    assert all(isinstance(value, float) for value in example.values())


def test_a_set_against_itself_scores_perfectly(example, cache_dir):
    metrics = moses_metrics(MOSES_TEST_SF, MOSES_TEST_SF, device="cpu", n_jobs=1, cache_dir=cache_dir, k=(3,))
    assert metrics["FCD/Test"] == pytest.approx(0.0, abs=1e-6)
    for name in ("SNN/Test", "Frag/Test", "Scaf/Test", "valid", "unique@3"):
        assert metrics[name] == pytest.approx(1.0), name
    for name in ("logP", "SA", "QED", "weight"):
        assert metrics[name] == 0.0, name
    assert example["FCD/Test"] > 1.0  # and a different set is far away


def test_two_molecules_by_hand(cache_dir):
    metrics = moses_metrics([ETHANOL, ETHYLAMINE], [ETHYLAMINE], device="cpu", n_jobs=1, cache_dir=cache_dir, k=(2,))
    t = T_ETHANOL_ETHYLAMINE
    assert metrics["SNN/Test"] == pytest.approx((t + 1.0) / 2)  # nearest neighbours: t and 1
    assert metrics["IntDiv"] == pytest.approx(1 - (1 + 1 + t + t) / 4)  # self-pairs included, as MOSES
    assert metrics["IntDiv2"] == pytest.approx(1 - math.sqrt((1 + t**2) / 2))  # mean over rows of (mean T^2)^(1/2)
    assert metrics["Frag/Test"] == pytest.approx(1 / math.sqrt(2))  # {CCO: 1, CCN: 1} . {CCN: 1}
    assert metrics["Scaf/Test"] == 0.0  # no ring anywhere
    logp = PROPERTIES["logp"]
    assert metrics["logP"] == pytest.approx(abs(logp(to_mol(ETHANOL)) - logp(to_mol(ETHYLAMINE))) / 2)
    assert math.isnan(metrics["FCD/Test"])  # one reference molecule has no covariance
    assert metrics["Filters"] == 1.0


def test_identical_molecules(cache_dir):
    metrics = moses_metrics([ETHANOL, "OCC", "C(C)O"], [ETHANOL], train=[ETHANOL], device="cpu", n_jobs=1,
                            cache_dir=cache_dir, k=(3,))
    assert metrics["IntDiv"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["IntDiv2"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["unique@3"] == pytest.approx(1 / 3)
    assert metrics["Novelty"] == 0.0
    assert metrics["SNN/Test"] == pytest.approx(1.0)
    assert metrics["Frag/Test"] == pytest.approx(1.0)
    for name in ("logP", "SA", "QED", "weight"):
        assert metrics[name] == 0.0, name


@pytest.mark.parametrize("generated", [[], [None, "", "   ", "not a molecule", "C1CC"]])
def test_empty_or_all_invalid_gives_defined_values(cache_dir, generated):
    test = reference_stats([ETHANOL], cache_dir=cache_dir)  # one molecule: no ChemNet run
    with pytest.warns(UserWarning, match="unique@1k"):
        metrics = moses_metrics(generated, test, test, train=frozenset({ETHANOL}), device="cpu", n_jobs=1,
                                cache_dir=cache_dir, k=(1000,))
    distances = {"FCD/Test", "FCD/TestSF", "logP", "SA", "QED", "weight"}
    assert all(math.isnan(metrics[name]) for name in distances)
    assert all(value == 0.0 for name, value in metrics.items() if name not in distances)


def test_one_string_is_not_a_list_of_smiles():
    with pytest.raises(TypeError):
        moses_metrics("CCO", [ETHANOL], cache_dir=None)
    with pytest.raises(TypeError):
        moses_metrics([ETHANOL, 42], [ETHANOL], cache_dir=None, n_jobs=1)


# --- caching and parallelism ---------------------------------------------------------------------

def _same_stats(a: ReferenceStats, b: ReferenceStats) -> bool:
    return (np.array_equal(a.fingerprints, b.fingerprints) and a.fragments == b.fragments
            and a.scaffolds == b.scaffolds and np.allclose(a.chemnet_mean, b.chemnet_mean, atol=1e-5, equal_nan=True)
            and np.allclose(a.chemnet_cov, b.chemnet_cov, atol=1e-5, equal_nan=True)
            and all(np.allclose(a.properties[k], b.properties[k]) for k in a.properties))


def test_reference_stats_are_cached_and_reused(example, cache_dir, monkeypatch):
    files = sorted(cache_dir.glob("moses-ref-*.npz"))
    assert len(files) >= 2  # test and scaffold test of the example
    before = reference_stats(MOSES_TEST, cache_dir=cache_dir)

    def no_recompute(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(moses, "_describe", no_recompute)
    again = reference_stats(MOSES_TEST, cache_dir=cache_dir)
    assert _same_stats(before, again) and len(again) == 2
    with np.load(files[0], allow_pickle=False) as data:  # plain arrays, no pickle
        assert "fingerprints" in data


def test_a_damaged_cache_file_is_recomputed(tmp_path):
    first = reference_stats([ETHANOL], cache_dir=tmp_path)
    (path,) = tmp_path.glob("moses-ref-*.npz")
    path.write_bytes(b"not a zip file")
    assert _same_stats(reference_stats([ETHANOL], cache_dir=tmp_path), first)


def test_training_set_is_canonical_and_cached(tmp_path, monkeypatch):
    assert training_set(["OCC", "C(C)O", "CCN", "not a molecule"], cache_dir=tmp_path) == {"CCO", "CCN"}
    monkeypatch.setattr(moses, "_canonicalize_chunk", lambda chunk: pytest.fail("recomputed although cached"))
    assert training_set(["OCC", "C(C)O", "CCN", "not a molecule"], cache_dir=tmp_path) == {"CCO", "CCN"}


def test_worker_processes_give_the_same_statistics(example, cache_dir, monkeypatch):
    monkeypatch.setattr(moses, "_MIN_PARALLEL_DESCRIBE", 0)
    monkeypatch.setattr(moses, "_MIN_PARALLEL_CANONICALIZE", 0)
    monkeypatch.setattr(moses, "_CHUNK", 1)  # one molecule per task: results must come back in order
    parallel = reference_stats(MOSES_TEST_SF, n_jobs=2, cache_dir=None, device="cpu")
    assert _same_stats(parallel, reference_stats(MOSES_TEST_SF, cache_dir=cache_dir))
    assert training_set(["OCC", "CCN", "bad"], n_jobs=2, cache_dir=None) == {"CCO", "CCN"}


# --- the data sets -------------------------------------------------------------------------------

def test_fetch_skips_files_already_present(tmp_path, monkeypatch):
    expected = {split: tmp_path / f"{split}.csv.gz" for split in MOSES_SPLITS}
    expected.update({f"{split}_stats": tmp_path / f"{split}_stats.npz" for split in ("test", "test_scaffolds")})
    for path in expected.values():
        path.write_bytes(b"")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip was called"))
    assert fetch_moses(tmp_path) == expected


def test_shipped_statistics_are_only_unpickled_when_pinned(tmp_path):
    assert moses_reference_stats(tmp_path, "test") is None  # not fetched
    import numpy as np

    np.savez(tmp_path / "test_stats.npz", stats=np.array({"FCD": {}}, dtype=object))
    with pytest.raises(RuntimeError, match="pinned"):
        moses_reference_stats(tmp_path, "test")


def test_fetch_reports_a_failing_pip(tmp_path, monkeypatch):
    failed = subprocess.CompletedProcess(args=[], returncode=1, stdout="", stderr="ERROR: no network")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(RuntimeError, match="no network"):
        fetch_moses(tmp_path / "moses")


def test_load_moses(tmp_path):
    with gzip.open(tmp_path / "test.csv.gz", "wt") as f:
        f.write("SMILES\nCCO\nc1ccccc1\n")
    assert load_moses(tmp_path, ["test"]) == {"test": ["CCO", "c1ccccc1"]}
    with pytest.raises(FileNotFoundError, match="fetch_moses"):
        load_moses(tmp_path, ["train"])
    with pytest.raises(ValueError, match="unknown MOSES split"):
        load_moses(tmp_path, ["valid"])


@pytest.mark.slow
def test_fetch_moses_downloads_the_data(tmp_path):
    paths = fetch_moses(tmp_path)
    for split in MOSES_SPLITS:
        assert hashlib.sha256(paths[split].read_bytes()).hexdigest() == MOSES_SHA256[split]
    test = moses_reference_stats(tmp_path, "test")  # MOSES's own statistics, as ReferenceStats
    assert len(test) == 176074 and test.chemnet_cov.shape == (512, 512)
    data = load_moses(tmp_path, ["test", "test_scaffolds"])
    assert (len(data["test"]), len(data["test_scaffolds"])) == (176074, 176225)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fetch_moses(tmp_path) == paths  # second call: nothing to do
