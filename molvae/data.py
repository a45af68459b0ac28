"""SMILES table in -> cleaned, deduplicated, tokenized data set, with an account of every row.

Every input row ends either in :attr:`PreparedData.kept` or in :attr:`PreparedData.rejected`
with a reason code from :data:`REJECT_REASONS`; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from molvae.chem import StandardizeOptions, clean_smiles_list, standardize, to_mol
from molvae.errors import DataError
from molvae.files import write_atomically
from molvae.parallel import ChunkMapper
from molvae.vocab import PAD_ID, Vocabulary

__all__ = [
    "REJECT_REASONS",
    "DataConfig",
    "DataError",
    "PreparedData",
    "TokenizedSet",
    "excluded_mask",
    "length_bucketed_batches",
    "prepare",
    "read_smiles_table",
    "standardized_set",
    "tokenize",
]

log = logging.getLogger(__name__)

REJECT_REASONS = {
    "empty": "the SMILES cell is empty or missing",
    "not_text": "the SMILES cell is not text",
    "too_long": "the SMILES string or its SELFIES token sequence exceeds the configured maximum",
    "unparsable": "RDKit cannot parse the SMILES (or the row held bytes that are not UTF-8)",
    "wildcard": "the molecule contains a wildcard/dummy atom '*'",
    "too_many_atoms": "more heavy atoms than the configured maximum",
    "disallowed_element": "contains an element outside the allowed set (metals, noble gases, ...)",
    "radical": "has unpaired electrons (a radical)",
    "selfies_encoding_failed": "SELFIES cannot encode the standardized molecule",
    "selfies_roundtrip_mismatch": "the SELFIES string does not decode back to the same molecule",
    "unknown_token": "a SELFIES symbol is not in the model's vocabulary",
    "duplicate": "the same canonical molecule appears in an earlier row",
}

# Bump when cleaning semantics change, so stale caches are not reused.
_CACHE_VERSION = 1
_SMILES_NAME = re.compile(r"smiles|^smi$", re.IGNORECASE)
_PARALLEL_MIN_ROWS = 4000


@dataclass(frozen=True)
class DataConfig:
    """How a SMILES table becomes training data."""

    smiles_column: str = ""  # name of the SMILES column; empty = find it by name
    property_columns: list[str] = field(default_factory=list)  # numeric columns kept as labels ("*" = all)
    max_tokens: int = 100  # longer SELFIES token sequences are rejected as too_long
    max_smiles_chars: int = 500  # longer input strings are rejected before parsing
    max_heavy_atoms: int = 80  # bigger molecules are rejected as too_many_atoms
    isomeric: bool = True  # keep stereochemistry
    neutralize: bool = True  # uncharge acids/bases where a neutral form exists
    max_reject_fraction: float = 0.5  # a file with more rejected rows than this is an error
    validation_fraction: float = 0.05  # share of molecules held out for validation metrics
    max_molecules: int = 0  # train on at most N molecules, a random subset of the training split (0 = all)
    exclude: str = ""  # SMILES file whose molecules, standardized alike, are removed (reason "excluded"): a benchmark's test set
    workers: int = 0  # processes for cleaning/encoding (0 = all cores)
    cache_dir: str = ".cache/molvae"  # prepared data is cached here keyed by content hash ("" = off)

    def standardize_options(self) -> StandardizeOptions:
        return StandardizeOptions(
            max_smiles_chars=self.max_smiles_chars,
            max_heavy_atoms=self.max_heavy_atoms,
            isomeric=self.isomeric,
            neutralize=self.neutralize,
        )


# --- reading --------------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: not a readable gzip file ({err})") from None
    # Bytes that are not UTF-8 become U+FFFD; the affected rows are rejected, not the file.
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def _split_records(text: str, suffix: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    first = lines[0]
    if suffix == ".tsv":
        delimiter = "\t"
    else:
        counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
        delimiter = max(counts, key=counts.get) if max(counts.values()) > 0 else None
    if delimiter is None:  # .smi style: SMILES, whitespace, optional name
        return [line.strip().split(None, 1) for line in lines]
    return [row for row in csv.reader(lines, delimiter=delimiter)]


def read_smiles_table(path: str | os.PathLike, smiles_column: str = "") -> tuple[pd.DataFrame, str]:
    """Read CSV/TSV/.smi/.txt (optionally gzipped) into a string DataFrame; find the SMILES column.

    The column is ``smiles_column`` if given, else the one whose name contains "smiles"
    (case-insensitive). A file without a header whose first field parses as a molecule gets
    the columns ``smiles, col2, ...``. Returns ``(table, smiles_column_name)``; the table has
    a 1-based ``row`` index (data rows, header excluded).
    """
    path = Path(path)
    suffix = path.suffix if path.suffix != ".gz" else Path(path.stem).suffix
    records = _split_records(_read_text(path), suffix)
    if not records:
        raise DataError(f"{path}: the file is empty")
    header = [h.strip() for h in records[0]]
    named = [h for h in header if _SMILES_NAME.search(h)]
    if smiles_column and smiles_column in header:
        column = smiles_column
    elif smiles_column:
        raise DataError(f"{path}: no column named {smiles_column!r}; columns are {header}")
    elif len(named) == 1:
        column = named[0]
    elif len(named) > 1:
        raise DataError(f"{path}: several SMILES-like columns {named}; choose one with --smiles-column")
    elif to_mol(header[0]) is not None:
        header = ["smiles"] + [f"col{i + 2}" for i in range(len(header) - 1)]
        records = [header, *records]
        column = "smiles"
    else:
        raise DataError(
            f"{path}: no SMILES column found among columns {header}; "
            "name it with --smiles-column (or check the delimiter)"
        )
    width = len(header)
    rows = [(r + [""] * width)[:width] for r in records[1:]]
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    table = pd.DataFrame(rows, columns=_unique_names(header), dtype=object)
    table.index = pd.RangeIndex(1, len(rows) + 1, name="row")
    return table, column


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        name = name or "unnamed"
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return unique


# --- cleaning -------------------------------------------------------------------------------

def _clean_all(smiles: list[str], options: StandardizeOptions, max_tokens: int, workers: int):
    clean = functools.partial(clean_smiles_list, options=options, max_tokens=max_tokens)
    with ChunkMapper(workers) as mapper:
        return mapper.flat_map(clean, smiles, min_parallel=_PARALLEL_MIN_ROWS, max_chunk=1000,
                               progress="cleaning + encoding")


def standardized_set(path: str | os.PathLike, options: StandardizeOptions, workers: int = 0) -> set[str]:
    """The canonical SMILES of the molecules in the SMILES file ``path``, standardized with
    ``options`` whatever their size: what ``data.exclude`` and ``molvae fit-head --exclude`` remove
    (test with :func:`excluded_mask`). With ``options.neutralize`` off, the set holds each molecule's
    neutral form as well: another protonation state of a test molecule is the same molecule."""
    table, column = read_smiles_table(path)
    unlimited = replace(options, max_smiles_chars=10**6, max_heavy_atoms=10**6)
    cleaned = _clean_all(table[column].tolist(), unlimited, 10**6, workers)
    forms = {canonical for canonical, _, _, _ in cleaned if canonical}
    if not options.neutralize:
        forms |= standardized_set(path, replace(options, neutralize=True), workers)
    return forms


def excluded_mask(smiles: Sequence[str], banned: set[str], options: StandardizeOptions) -> np.ndarray:
    """Which of the standardized ``smiles`` are in ``banned`` (:func:`standardized_set` with the same
    ``options``): as written or, when ``options`` keep charges, in their neutral form.

    >>> opts = StandardizeOptions(neutralize=False)
    >>> excluded_mask(["CC[NH3+]", "CCN", "CCO"], {"CCN"}, opts).tolist()
    [True, True, False]
    """
    neutral = replace(options, neutralize=True, max_smiles_chars=10**6, max_heavy_atoms=10**6)
    return np.array([s in banned or (not options.neutralize and ("+" in s or "-" in s)
                                     and standardize(s, neutral)[0] in banned) for s in smiles], dtype=bool)


@dataclass
class PreparedData:
    """The outcome of :func:`prepare`: kept molecules and the rejected rows, with reasons."""

    kept: pd.DataFrame  # row, input, smiles, selfies, <label columns>
    rejected: pd.DataFrame  # row, input, reason, detail
    n_rows: int  # data rows in the input file
    source_hash: str  # sha256 of the input file's bytes
    smiles_column: str
    label_columns: list[str]

    def counts(self) -> dict[str, int]:
        """Input, kept and rejected row counts, and one count per reject reason."""
        counts = {"rows_in": self.n_rows, "rows_kept": len(self.kept), "rows_rejected": len(self.rejected)}
        for reason, n in self.rejected["reason"].value_counts().sort_index().items():
            counts[f"rejected_{reason}"] = int(n)
        return counts

    def exclude(self, path: str | os.PathLike, options: StandardizeOptions, workers: int = 0) -> PreparedData:
        """Move kept rows whose molecule is in the SMILES file ``path`` (standardized with ``options``,
        whatever its size; any protonation state, :func:`excluded_mask`) to the rejected rows (``excluded``)."""
        banned = standardized_set(path, options, workers)
        hit = excluded_mask(self.kept["smiles"].tolist(), banned, options)  # (N,) bool
        moved = pd.DataFrame({"row": self.kept.loc[hit, "row"], "input": self.kept.loc[hit, "input"],
                              "reason": "excluded", "detail": f"in {path}"})
        log.info("excluded %d molecules found in %s (%d molecules)", int(hit.sum()), path, len(banned))
        rejected = pd.concat([self.rejected, moved]).sort_values("row", ignore_index=True)
        return PreparedData(self.kept[~hit].reset_index(drop=True), rejected, self.n_rows,
                            self.source_hash, self.smiles_column, self.label_columns)

    def restrict_to_vocabulary(self, vocab: Vocabulary) -> PreparedData:
        """Move kept rows holding a symbol outside ``vocab`` to the rejected rows (``unknown_token``)."""
        unknown = [vocab.unknown_symbols(s) for s in self.kept["selfies"]]
        bad = pd.Series([bool(u) for u in unknown], index=self.kept.index)
        moved = pd.DataFrame({
            "row": self.kept.loc[bad, "row"],
            "input": self.kept.loc[bad, "input"],
            "reason": "unknown_token",
            "detail": [f"not in vocabulary: {' '.join(sorted(set(u)))}" for u in unknown if u],
        })
        rejected = pd.concat([self.rejected, moved]).sort_values("row", ignore_index=True)
        return PreparedData(self.kept[~bad].reset_index(drop=True), rejected, self.n_rows,
                            self.source_hash, self.smiles_column, self.label_columns)


def prepare(path: str | os.PathLike, config: DataConfig = DataConfig()) -> PreparedData:
    """Read, standardize, deduplicate and SELFIES-encode a SMILES file.

    Raises :class:`DataError` when the file cannot be used at all, or when more than
    ``config.max_reject_fraction`` of its rows are rejected.
    """
    path = Path(path)
    source_hash = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
    cache_file = _cache_file(config, source_hash)
    if cache_file is not None and cache_file.exists():
        log.info("using cached prepared data %s", cache_file)
        prepared = _load_cache(cache_file)
    else:
        prepared = _prepare_uncached(path, config, source_hash)
        if cache_file is not None:
            _save_cache(prepared, cache_file)
    if config.exclude:
        prepared = prepared.exclude(config.exclude, config.standardize_options(), config.workers)
    _check_reject_fraction(prepared, config, path)
    return prepared


def _prepare_uncached(path: Path, config: DataConfig, source_hash: str) -> PreparedData:
    table, column = read_smiles_table(path, config.smiles_column)
    label_columns = _label_columns(table, column, config.property_columns, path)
    inputs = table[column].tolist()
    results = _clean_all(inputs, config.standardize_options(), config.max_tokens, config.workers)
    kept_rows, rejected_rows = [], []
    first_row: dict[str, int] = {}
    for row, raw, (canonical, selfies, reason, detail) in zip(table.index, inputs, results):
        if reason is None and canonical in first_row:
            reason, detail = "duplicate", f"same molecule as row {first_row[canonical]}"
        if reason is not None:
            rejected_rows.append((row, raw, reason, detail))
            continue
        first_row[canonical] = row
        kept_rows.append((row, raw, canonical, selfies))
    kept = pd.DataFrame(kept_rows, columns=["row", "input", "smiles", "selfies"])
    for name in label_columns:
        values = pd.to_numeric(table.loc[kept["row"], name], errors="coerce").to_numpy(dtype=float)
        kept[name] = values
    rejected = pd.DataFrame(rejected_rows, columns=["row", "input", "reason", "detail"])
    return PreparedData(kept, rejected, len(table), source_hash, column, label_columns)


def _label_columns(table: pd.DataFrame, smiles_column: str, wanted: list[str], path: Path) -> list[str]:
    if wanted == ["*"]:
        numeric = []
        for name in table.columns:
            if name == smiles_column:
                continue
            values = pd.to_numeric(table[name], errors="coerce")
            if values.notna().mean() > 0.5:
                numeric.append(name)
        return numeric
    missing = [name for name in wanted if name not in table.columns]
    if missing:
        raise DataError(f"{path}: property columns {missing} not found; columns are {list(table.columns)}")
    return list(wanted)


def _check_reject_fraction(prepared: PreparedData, config: DataConfig, path: Path) -> None:
    if prepared.kept.empty:
        raise DataError(f"{path}: no usable molecules in {prepared.n_rows} rows; reasons: {_reason_summary(prepared)}")
    fraction = len(prepared.rejected) / max(prepared.n_rows, 1)
    if fraction > config.max_reject_fraction:
        raise DataError(
            f"{path}: {fraction:.0%} of {prepared.n_rows} rows rejected (max_reject_fraction="
            f"{config.max_reject_fraction}); reasons: {_reason_summary(prepared)}. "
            "Is this a SMILES file, and is the right column used?"
        )


def _reason_summary(prepared: PreparedData) -> str:
    return ", ".join(f"{k}={v}" for k, v in prepared.rejected["reason"].value_counts().items()) or "none"


def _cache_file(config: DataConfig, source_hash: str) -> Path | None:
    if not config.cache_dir or not source_hash:
        return None
    relevant = asdict(config)
    for key in ("cache_dir", "workers", "max_reject_fraction", "validation_fraction", "max_molecules", "exclude"):
        relevant.pop(key)
    key = hashlib.sha256(json.dumps([_CACHE_VERSION, source_hash, relevant], sort_keys=True).encode()).hexdigest()
    return Path(config.cache_dir) / f"prepared-{key[:24]}.json.gz"


def _save_cache(prepared: PreparedData, path: Path) -> None:
    payload = {
        "kept": prepared.kept.to_dict(orient="list"),
        "rejected": prepared.rejected.to_dict(orient="list"),
        "n_rows": prepared.n_rows,
        "source_hash": prepared.source_hash,
        "smiles_column": prepared.smiles_column,
        "label_columns": prepared.label_columns,
    }

    def write(raw: BinaryIO) -> None:
        with gzip.open(raw, "wt", encoding="utf-8", compresslevel=3) as f:
            json.dump(payload, f)

    write_atomically(path, write)


def _load_cache(path: Path) -> PreparedData:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        payload = json.load(f)
    kept = pd.DataFrame(payload["kept"], columns=["row", "input", "smiles", "selfies", *payload["label_columns"]])
    rejected = pd.DataFrame(payload["rejected"], columns=["row", "input", "reason", "detail"])
    return PreparedData(kept, rejected, payload["n_rows"], payload["source_hash"],
                        payload["smiles_column"], payload["label_columns"])


# --- tensors and batches --------------------------------------------------------------------

@dataclass
class TokenizedSet:
    """Padded token ids of a set of molecules, ready for batching."""

    tokens: torch.Tensor  # (N, T) int16, BOS ... EOS then PAD
    lengths: torch.Tensor  # (N,) int64, tokens including BOS and EOS
    smiles: list[str]
    labels: torch.Tensor | None = None  # (N, P) float32, NaN where missing

    def __len__(self) -> int:
        return len(self.smiles)

    def subset(self, index: torch.Tensor) -> TokenizedSet:
        labels = None if self.labels is None else self.labels[index]
        return TokenizedSet(self.tokens[index], self.lengths[index], [self.smiles[i] for i in index.tolist()], labels)

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens (B, T_batch) int64, lengths (B,))`` trimmed to the longest molecule in the batch."""
        lengths = self.lengths[index]
        tokens = self.tokens[index, : int(lengths.max())].long()
        return tokens.to(device, non_blocking=True), lengths.to(device)


def tokenize(selfies: Sequence[str], smiles: Sequence[str], vocab: Vocabulary,
             labels: torch.Tensor | None = None, chunk: int = 65536) -> TokenizedSet:
    """Token ids for SELFIES strings (with BOS/EOS) in one padded int16 tensor.

    Works through ``chunk`` strings at a time, so the Python lists of ids never exist for more
    than one chunk (1.6 M molecules would otherwise hold ~60 M list slots at once).
    """
    blocks, lengths = [], []
    bar = tqdm(total=len(selfies), desc="tokenizing", unit="mol", disable=None)
    for start in range(0, len(selfies), chunk):
        encoded = [vocab.encode(s) for s in selfies[start:start + chunk]]
        sizes = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))  # (C,)
        flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int16, count=int(sizes.sum()))
        rows = np.repeat(np.arange(len(encoded)), sizes)  # row of each id
        columns = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # position in its row
        block = np.full((len(encoded), int(sizes.max())), PAD_ID, dtype=np.int16)
        block[rows, columns] = flat
        blocks.append(block)
        lengths.append(sizes)
        bar.update(len(encoded))
    bar.close()
    width = max((b.shape[1] for b in blocks), default=2)
    tokens = torch.full((len(selfies), width), PAD_ID, dtype=torch.int16)
    offset = 0
    for block in blocks:
        tokens[offset:offset + len(block), : block.shape[1]] = torch.from_numpy(block)
        offset += len(block)
    lengths_tensor = torch.from_numpy(np.concatenate(lengths)) if lengths else torch.zeros(0, dtype=torch.long)
    return TokenizedSet(tokens, lengths_tensor, list(smiles), labels)


def length_bucketed_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                            shuffle: bool = True) -> list[torch.Tensor]:
    """Batches of indices with similar lengths, so padding stays small; batch order shuffled.

    >>> g = torch.Generator().manual_seed(0)
    >>> batches = length_bucketed_batches(torch.tensor([5, 9, 5, 9]), 2, g)
    >>> sorted(sorted(b.tolist()) for b in batches)
    [[0, 2], [1, 3]]
    """
    n = len(lengths)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order[torch.argsort(lengths[order], stable=True)]  # sort by length, random ties
    batches = list(order.split(batch_size))
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
