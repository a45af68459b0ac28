"""Reading and cleaning input files: every row is kept or rejected with a reason."""

from __future__ import annotations

import gzip
import os

import pytest
import torch

from molvae import data as data_module
from molvae.data import (
    REJECT_REASONS,
    DataConfig,
    DataError,
    length_bucketed_batches,
    prepare,
    read_smiles_table,
    tokenize,
)
from molvae.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary

from .conftest import HOSTILE_CSV, MOLECULES_CSV

# Row number (1-based, header excluded) -> expected outcome for the hostile fixture.
HOSTILE_EXPECTED = {
    1: "kept", 2: "empty", 3: "empty", 4: "unparsable", 5: "unparsable", 6: "too_long", 7: "wildcard",
    8: "disallowed_element", 9: "disallowed_element", 10: "kept", 11: "kept", 12: "kept", 13: "duplicate",
    14: "unparsable", 15: "kept", 16: "kept", 17: "empty", 18: "empty", 19: "disallowed_element",
    20: "unparsable", 21: "kept", 22: "kept", 23: "radical", 24: "too_many_atoms",
}


def config(tmp_path, **kwargs) -> DataConfig:
    return DataConfig(**{"cache_dir": str(tmp_path / "cache"), "workers": 1, **kwargs})


def test_hostile_fixture_is_accounted_for_row_by_row(tmp_path):
    prepared = prepare(HOSTILE_CSV, config(tmp_path, max_reject_fraction=1.0))
    outcome = {int(r): "kept" for r in prepared.kept["row"]}
    outcome.update({int(r): reason for r, reason in zip(prepared.rejected["row"], prepared.rejected["reason"])})
    assert outcome == HOSTILE_EXPECTED
    assert prepared.n_rows == len(HOSTILE_EXPECTED) == len(prepared.kept) + len(prepared.rejected)
    assert set(prepared.rejected["reason"]) <= set(REJECT_REASONS)
    kept = dict(zip(prepared.kept["row"], prepared.kept["smiles"]))
    assert kept[10] == "O=C(O)c1ccccc1"  # sodium benzoate -> benzoic acid
    assert kept[11] == "CN"  # charged amine neutralized
    duplicate = prepared.rejected.set_index("row").loc[13]
    assert duplicate["detail"] == "same molecule as row 1"
    counts = prepared.counts()
    assert counts["rows_in"] == 24 and counts["rows_kept"] == 8 and counts["rejected_empty"] == 4


def test_mostly_garbage_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"rows rejected \(max_reject_fraction=0.5\).*unparsable"):
        prepare(HOSTILE_CSV, config(tmp_path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"smiles\n", "header but no data rows"),
        (b"id,name\n1,foo\n", r"no SMILES column found among columns \['id', 'name'\]"),
        (b"smiles,SMILES_2\nCC,CC\n", "several SMILES-like columns"),
        (b"\x1f\x8bnot really gzip", "gzip"),
    ],
)
def test_unusable_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        prepare(path, config(tmp_path))


def test_missing_file_and_column(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        prepare(tmp_path / "absent.csv", config(tmp_path))
    with pytest.raises(DataError, match=r"no column named 'smi'; columns are \['compound_id', 'SMILES', 'pIC50'\]"):
        read_smiles_table(MOLECULES_CSV, "smi")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("semicolon.csv", b"Name;Canonical_SMILES\na;CCO\nb;CCN\n"),
        ("tabs.tsv", b"smiles\tid\nCCO\t1\nCCN\t2\n"),
        ("plain.smi", b"CCO ethanol\nCCN ethyl amine\n"),
        ("values.txt", b"CCO -1.5\nCCN 0.25\n"),
        ("quoted.csv", b'"smiles","id"\n"CCO","1"\n"CCN","2"\n'),
    ],
)
def test_delimiters_headers_and_formats(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    prepared = prepare(path, config(tmp_path))
    assert prepared.kept["smiles"].tolist() == ["CCO", "CCN"]


def test_gzip_and_property_columns(tmp_path):
    path = tmp_path / "molecules.csv.gz"
    path.write_bytes(gzip.compress(MOLECULES_CSV.read_bytes()))
    prepared = prepare(path, config(tmp_path, property_columns=["*"]))
    assert prepared.smiles_column == "SMILES"
    assert prepared.label_columns == ["pIC50"]
    assert prepared.kept["pIC50"].notna().all()
    with pytest.raises(DataError, match="property columns"):
        prepare(path, config(tmp_path, property_columns=["IC50"], cache_dir=""))


def test_second_run_uses_the_cache(tmp_path, monkeypatch):
    first = prepare(MOLECULES_CSV, config(tmp_path))
    monkeypatch.setattr(data_module, "_clean_all", lambda *a, **k: pytest.fail("cache not used"))
    second = prepare(MOLECULES_CSV, config(tmp_path))
    assert second.kept.equals(first.kept)
    assert list(tmp_path.joinpath("cache").glob("prepared-*.json.gz"))


def test_two_runs_writing_the_same_cache_both_succeed(tmp_path, monkeypatch):
    """Two runs preparing the same file at once (two study arms): the second writer finishes while
    the first is about to rename its file, and neither fails."""
    prepared = prepare(MOLECULES_CSV, config(tmp_path, cache_dir=""))
    path = tmp_path / "cache" / "prepared-x.json.gz"
    replace, interleaved = os.replace, []

    def second_writer_first(src, dst):
        if not interleaved:
            interleaved.append(True)
            data_module._save_cache(prepared, path)
        replace(src, dst)

    monkeypatch.setattr(data_module.os, "replace", second_writer_first)
    data_module._save_cache(prepared, path)
    assert interleaved
    assert data_module._load_cache(path).kept.equals(prepared.kept)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_parallel_cleaning_matches_serial(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "_PARALLEL_MIN_ROWS", 1)
    serial = prepare(MOLECULES_CSV, config(tmp_path, cache_dir=""))
    parallel = prepare(MOLECULES_CSV, DataConfig(cache_dir="", workers=2))
    assert parallel.kept.equals(serial.kept)


def test_too_long_and_unknown_token(tmp_path):
    prepared = prepare(MOLECULES_CSV, config(tmp_path, max_tokens=30, max_reject_fraction=1.0))
    too_long = prepared.rejected[prepared.rejected["reason"] == "too_long"]
    assert len(too_long) > 0 and too_long["detail"].str.contains("> max_tokens=30").all()
    restricted = prepared.restrict_to_vocabulary(Vocabulary(["[C]", "[=C]", "[O]"]))
    assert len(restricted.kept) + len(restricted.rejected) == prepared.n_rows
    assert (restricted.rejected["reason"] == "unknown_token").sum() == len(prepared.kept) - len(restricted.kept)


def test_tokenize_pads_each_row_across_chunk_boundaries():
    vocab = Vocabulary(["[C]", "[O]"])
    selfies = ["[C]", "[C][O][C]", "", "[O][O]", "[C][C][C][C]"]
    expected = [[BOS_ID, *(vocab.index[s] for s in vocab_split), EOS_ID]
                for vocab_split in ([["[C]"], ["[C]", "[O]", "[C]"], [], ["[O]", "[O]"], ["[C]"] * 4])]
    for chunk in (1, 2, 3, 100):  # chunks narrower than the widest row must be padded to it
        data = tokenize(selfies, ["C", "COC", "", "OO", "CCCC"], vocab, chunk=chunk)
        assert data.tokens.dtype == torch.int16 and data.tokens.shape == (5, 6)
        assert data.lengths.tolist() == [len(e) for e in expected]
        for row, ids in zip(data.tokens.tolist(), expected):
            assert row == ids + [PAD_ID] * (6 - len(ids))
    assert tokenize([], [], vocab).tokens.shape == (0, 2)


def test_length_bucketed_batches_cover_every_index_once():
    lengths = torch.randint(5, 60, (1000,))
    batches = length_bucketed_batches(lengths, 64, torch.Generator().manual_seed(3))
    flat = torch.cat(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = [int(lengths[b].max() - lengths[b].min()) for b in batches]
    assert sum(spread) / len(spread) < 5  # near-uniform lengths inside a batch: little padding


@pytest.mark.parametrize("neutralize", [True, False])
def test_exclude_removes_a_test_molecule_in_any_protonation_state(tmp_path, neutralize):
    """A benchmark molecule written protonated (ZINC) is the same molecule as its neutral form
    (MOSES): both are removed, whether or not the run keeps charges."""
    test_set = tmp_path / "test.smi"
    test_set.write_text("CC[NH3+]\nOC(=O)c1ccccc1\n")
    train = tmp_path / "train.csv"
    train.write_text("smiles\nCCN\nCC[NH3+]\n[O-]C(=O)c1ccccc1\nCCO\nCC[NH2+]C\nc1ccccc1\n")
    prepared = prepare(train, config(tmp_path, exclude=str(test_set), neutralize=neutralize, max_reject_fraction=1.0))
    excluded = prepared.rejected.loc[prepared.rejected["reason"] == "excluded", "input"].tolist()
    duplicates = prepared.rejected.loc[prepared.rejected["reason"] == "duplicate", "input"].tolist()
    assert set(excluded) | set(duplicates) == {"CCN", "CC[NH3+]", "[O-]C(=O)c1ccccc1"}
    assert sorted(prepared.kept["input"]) == sorted(["CC[NH2+]C", "CCO", "c1ccccc1"])
    assert ("CC[NH2+]C" in prepared.kept["smiles"].tolist()) == (not neutralize)  # charges kept as asked
