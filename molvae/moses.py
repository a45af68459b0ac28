"""The MOSES benchmark: its data sets and its full metric table.

:func:`fetch_moses` extracts the MOSES train / test / test_scaffolds CSVs from the ``molsets``
wheel on PyPI; :func:`load_moses` reads them; :func:`moses_metrics` computes the metric table of
MOSES's ``get_all_metrics`` (molsets 0.3.1) for a list of generated SMILES, so that the numbers
can stand beside the published tables:

``valid``, ``unique@1k``, ``unique@10k``, ``FCD``, ``SNN``, ``Frag`` and ``Scaf`` against the test
set (``/Test``) and the scaffold test set (``/TestSF``), ``IntDiv``, ``IntDiv2``, ``Filters``,
the Wasserstein distances of ``logP``, ``SA``, ``QED`` and ``weight``, and ``Novelty``.

As in MOSES, ``valid`` and ``unique@k`` count the raw input; every other metric is computed on the
*valid* generated molecules, canonicalized, duplicates kept; ``Novelty`` on the distinct ones.
Reference statistics (ChemNet mean and covariance, fingerprints, fragment and scaffold counts,
property values) are computed once per reference set and cached as ``.npz`` files without pickle.

Edge cases are defined, never crashes: with no valid molecule the similarities and fractions are
0.0 (MOSES returns NaN for an empty ``Frag``/``Scaf`` and divides by zero elsewhere); the
distances (``FCD`` with fewer than two molecules on a side, ``logP``/``SA``/``QED``/``weight``
with none) are NaN, because 0.0 would claim a perfect match.

RDKit work runs in a pool of worker processes (``spawn``: a script that calls these functions on
large inputs needs the usual ``if __name__ == "__main__":`` guard); ChemNet runs on the GPU when
one is available.

>>> cosine_similarity({"a": 1, "b": 1}, {"a": 1})
0.7071067811865475
>>> passes_filters(to_mol("CCO")), passes_filters(to_mol("CC[NH3+]"))
(True, False)
>>> scaffold(to_mol("c1ccc(Cc2ccccc2)cc1")), scaffold(to_mol("Cc1ccccc1")) is None
('c1ccc(Cc2ccccc2)cc1', True)
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.resources
import io
import logging
import math
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem.rdFingerprintGenerator import GetMorganGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold
from tqdm.auto import tqdm

from molvae.chem import PROPERTIES, to_mol, without_rdkit_log
from molvae.files import write_atomically
from molvae.parallel import ChunkMapper

__all__ = [
    "DEFAULT_CACHE_DIR",
    "MOSES_ALLOWED_ATOMS",
    "MOSES_PROPERTIES",
    "MOSES_SPLITS",
    "ReferenceStats",
    "chemnet_activations",
    "chemnet_moments",
    "cosine_similarity",
    "download_molsets_wheel",
    "fcd_of_moments",
    "fetch_moses",
    "fragments",
    "frechet_distance",
    "load_moses",
    "moses_metrics",
    "moses_reference_stats",
    "moses_test_fcd_reference",
    "passes_filters",
    "reference_stats",
    "scaffold",
    "training_set",
]

logger = logging.getLogger(__name__)

MOSES_SPLITS = ("train", "test", "test_scaffolds")
MOSES_PACKAGE = "molsets==0.3.1"  # the release whose wheel carries the data sets (MIT licence)
# sha256 of each file in molsets 0.3.1; a mismatch means a different or damaged download.
MOSES_SHA256 = {
    "train": "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c",
    "test": "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2",
    "test_scaffolds": "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde",
}
# MOSES's own reference statistics of the test sets (same wheel), pinned: these files hold pickled
# Python objects, so they are only ever unpickled when their sha256 is exactly this.
MOSES_STATS_SHA256 = {
    "test": "ded25073225a895d4ed17bf1d4223d27560e87ff4cb85786346ca1cc8efa03d3",
    "test_scaffolds": "7b7aba6c1474634a019bebf16f389d554cb9dd1021dfc8c1d1e54430a9f0e7f8",
}

# Where reference statistics are cached unless the caller says otherwise (git-ignored).
DEFAULT_CACHE_DIR = Path(".cache") / "molvae"
_CACHE_FORMAT = 1  # bump when the cached fields or their meaning change

# MOSES's property names -> molvae's property functions (the same RDKit calls as MOSES).
MOSES_PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "logP": PROPERTIES["logp"],
    "SA": PROPERTIES["sa"],
    "QED": PROPERTIES["qed"],
    "weight": PROPERTIES["mw"],
}

# Atoms a molecule may contain to pass MOSES's filters.
MOSES_ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})

_FP_BITS = 1024  # MOSES's Morgan fingerprint: radius 2, 1024 bits
_MORGAN_1024 = GetMorganGenerator(radius=2, fpSize=_FP_BITS)
_CHEMNET_PAD = 350  # fcd_torch (used by MOSES) pads or cuts every SMILES to 350 tokens, end token included
_CHUNK = 2000  # at most this many SMILES per task sent to a worker process
# Below these sizes, starting worker processes (a few seconds) costs more than it saves.
_MIN_PARALLEL_DESCRIBE = 500  # molecules described for the metrics (~5-40 ms each with filters)
_MIN_PARALLEL_CANONICALIZE = 20000  # SMILES canonicalized (~0.2-1 ms each)


# --- the data sets ------------------------------------------------------------------------------

def download_molsets_wheel(folder: Path) -> Path:
    """The ``molsets`` wheel (:data:`MOSES_PACKAGE`, no dependencies) downloaded by pip into ``folder``.
    Raises ``RuntimeError`` when pip fails."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-q", MOSES_PACKAGE, "-d", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-2000:]
        shown = " ".join(["pip", *command[3:-2]])
        raise RuntimeError(f"`{shown}` failed (exit {done.returncode}):\n{detail}")
    wheels = sorted(Path(folder).glob("molsets-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip reported success but left no molsets wheel in {folder}")
    return wheels[0]


def fetch_moses(dest: Path) -> dict[str, Path]:
    """Put the MOSES ``train``, ``test`` and ``test_scaffolds`` CSVs (gzip) into ``dest``, with
    MOSES's reference statistics of the test sets (``test_stats.npz``, ``test_scaffolds_stats.npz``).

    Downloads the ``molsets`` wheel with pip (no dependencies, no code from it is imported or
    run) and extracts ``moses/dataset/data/<file>``. Files already present are kept.
    Returns ``{name: path}``. Raises ``RuntimeError`` when pip fails or a file's checksum is wrong.
    """
    dest = Path(dest)
    paths = {split: dest / f"{split}.csv.gz" for split in MOSES_SPLITS}
    paths.update({f"{split}_stats": dest / f"{split}_stats.npz" for split in MOSES_STATS_SHA256})
    expected = {**MOSES_SHA256, **{f"{split}_stats": h for split, h in MOSES_STATS_SHA256.items()}}
    missing = [split for split, path in paths.items() if not path.is_file()]
    if not missing:
        return paths
    with tempfile.TemporaryDirectory(prefix="molvae-moses-") as tmp:
        logger.info("downloading %s to extract the MOSES data sets", MOSES_PACKAGE)
        wheel_path = download_molsets_wheel(Path(tmp))
        with zipfile.ZipFile(wheel_path) as wheel:
            for name in missing:
                content = wheel.read(f"moses/dataset/data/{paths[name].name}")
                digest = hashlib.sha256(content).hexdigest()
                if digest != expected[name]:
                    raise RuntimeError(f"{paths[name].name} from {wheel_path.name} has sha256 {digest}, "
                                       f"expected {expected[name]}")
                _write_atomically(paths[name], content)
    return paths


def moses_test_fcd_reference() -> tuple[np.ndarray, np.ndarray]:
    """ChemNet (mean (512,), covariance (512, 512)) of the MOSES test set, as shipped by MOSES
    (``test_stats.npz`` of molsets 0.3.1, kept in ``molvae/resources``): the FCD/Test reference
    without downloading or describing the test set."""
    path = importlib.resources.files("molvae") / "resources" / "moses_test_fcd.npz"
    with importlib.resources.as_file(path) as file, np.load(file) as stats:
        return stats["mean"].astype(np.float64), stats["cov"].astype(np.float64)


def moses_reference_stats(data_dir: Path, split: str) -> ReferenceStats | None:
    """MOSES's own statistics of ``split`` (``test`` or ``test_scaffolds``) from ``data_dir``, as
    :class:`ReferenceStats`; ``None`` when the file is not there. A file whose sha256 is not the
    pinned one is refused (it is a pickle, and would be trusted code)."""
    path = Path(data_dir) / f"{split}_stats.npz"
    if not path.is_file():
        return None
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != MOSES_STATS_SHA256[split]:
        raise RuntimeError(f"{path} has sha256 {digest}, not the pinned {MOSES_STATS_SHA256[split]}: "
                           "delete it and run `molvae fetch-moses` again")
    with np.load(io.BytesIO(content), allow_pickle=True) as data:  # pinned by hash above
        stats = data["stats"].item()
    return ReferenceStats(
        fingerprints=np.packbits(np.asarray(stats["SNN"]["fps"], dtype=np.uint8), axis=1),
        fragments=dict(stats["Frag"]["frag"]),
        scaffolds=dict(stats["Scaf"]["scaf"]),
        properties={name: np.asarray(stats[name]["values"], dtype=np.float64) for name in MOSES_PROPERTIES},
        chemnet_mean=np.asarray(stats["FCD"]["mu"], dtype=np.float64),
        chemnet_cov=np.asarray(stats["FCD"]["sigma"], dtype=np.float64),
    )


def load_moses(data_dir: Path, splits: Sequence[str] = MOSES_SPLITS) -> dict[str, list[str]]:
    """SMILES of the MOSES splits in ``data_dir`` (as written by :func:`fetch_moses`)."""
    import pandas as pd  # only needed here; keeps importing this module light

    data = {}
    for split in splits:
        if split not in MOSES_SPLITS:
            raise ValueError(f"unknown MOSES split {split!r}; expected one of {MOSES_SPLITS}")
        path = Path(data_dir) / f"{split}.csv.gz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run molvae.moses.fetch_moses({str(data_dir)!r}) first")
        data[split] = pd.read_csv(path, compression="gzip")["SMILES"].dropna().astype(str).tolist()
    return data


def _write_atomically(path: Path, content: bytes) -> None:
    write_atomically(path, lambda f: f.write(content))


# --- per-molecule pieces ------------------------------------------------------------------------

def fragments(mol: Chem.Mol) -> list[str]:
    """SMILES of the BRICS fragments of a molecule (with dummy atoms at the cut bonds), as MOSES.

    >>> sorted(fragments(to_mol("CCOC(=O)c1ccccc1")))
    ['[1*]C([6*])=O', '[16*]c1ccccc1', '[3*]O[3*]', '[4*]CC']
    """
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def scaffold(mol: Chem.Mol, min_rings: int = 2) -> str | None:
    """Bemis-Murcko scaffold SMILES, or ``None`` with fewer than ``min_rings`` rings (MOSES uses 2)."""
    try:
        core = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(core)
    if not smiles or core.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


@functools.cache
def _alert_patterns() -> tuple[Chem.Mol, ...]:
    """MOSES's MCF and PAINS SMARTS (package data), parsed once per process."""
    folder = importlib.resources.files("molvae") / "resources"
    smarts = [row["smarts"] for row in csv.DictReader(io.StringIO((folder / "mcf.csv").read_text()))]
    smarts += [row[0] for row in csv.reader(io.StringIO((folder / "wehi_pains.csv").read_text())) if row]
    patterns = tuple(Chem.MolFromSmarts(s.strip()) for s in smarts)
    if any(p is None for p in patterns):
        raise RuntimeError("a SMARTS pattern in molvae/data does not parse; the package data is damaged")
    return patterns


def passes_filters(mol: Chem.Mol, allowed: frozenset[str] = MOSES_ALLOWED_ATOMS) -> bool:
    """MOSES ``mol_passes_filters``: no ring of 8 or more atoms, no charged atom, only ``allowed``
    atoms, no MCF or PAINS alert (matched with explicit hydrogens), and a SMILES that round-trips.

    >>> passes_filters(to_mol("C1CCCCCCC1")), passes_filters(to_mol("CCP"))
    (False, False)
    """
    if any(len(ring) >= 8 for ring in mol.GetRingInfo().AtomRings()):
        return False
    if any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms()):
        return False
    if any(atom.GetSymbol() not in allowed for atom in mol.GetAtoms()):
        return False
    with_hydrogens = Chem.AddHs(mol)
    if any(with_hydrogens.HasSubstructMatch(pattern) for pattern in _alert_patterns()):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(smiles) and Chem.MolFromSmiles(smiles) is not None


def cosine_similarity(ref_counts: Mapping[str, int], gen_counts: Mapping[str, int]) -> float:
    """Cosine similarity of two count vectors given as ``{key: count}`` (missing keys count 0).

    MOSES's ``Frag`` and ``Scaf``; 0.0 when either side is empty (MOSES: NaN).

    >>> cosine_similarity({"a": 2}, {"a": 5}), cosine_similarity({"a": 1}, {"b": 1}), cosine_similarity({}, {"a": 1})
    (1.0, 0.0, 0.0)
    """
    if not ref_counts or not gen_counts:
        return 0.0
    dot = sum(float(count) * gen_counts.get(key, 0) for key, count in ref_counts.items())
    norm_ref = math.sqrt(sum(float(c) ** 2 for c in ref_counts.values()))
    norm_gen = math.sqrt(sum(float(c) ** 2 for c in gen_counts.values()))
    if norm_ref == 0.0 or norm_gen == 0.0:
        return 0.0
    return dot / (norm_ref * norm_gen)


# --- parallel RDKit passes ----------------------------------------------------------------------

def _canonicalize_chunk(smiles: list[str | None]) -> list[str | None]:
    """Canonical SMILES (MOSES's ``canonic_smiles``), ``None`` where invalid."""
    out: list[str | None] = []
    with without_rdkit_log():
        for s in smiles:
            mol = to_mol(s)
            out.append(None if mol is None else Chem.MolToSmiles(mol))
    return out


def _describe_chunk(smiles: list[str], with_filters: bool) -> dict[str, Any]:
    """Everything the metrics need from each valid molecule of a chunk; invalid ones are dropped."""
    canonical, fingerprints, props, passes = [], [], [], []
    fragment_counts: Counter[str] = Counter()
    scaffold_counts: Counter[str] = Counter()
    with without_rdkit_log():
        for s in smiles:
            mol = to_mol(s)
            if mol is None:
                continue
            canonical.append(Chem.MolToSmiles(mol))
            fingerprints.append(np.packbits(_MORGAN_1024.GetFingerprintAsNumPy(mol)))  # (128,)
            fragment_counts.update(fragments(mol))
            core = scaffold(mol)
            if core is not None:
                scaffold_counts[core] += 1
            props.append([float(func(mol)) for func in MOSES_PROPERTIES.values()])
            if with_filters:
                passes.append(passes_filters(mol))
    return {
        "canonical": canonical,
        "fingerprints": np.array(fingerprints, dtype=np.uint8).reshape(len(canonical), _FP_BITS // 8),
        "fragments": fragment_counts,
        "scaffolds": scaffold_counts,
        "properties": np.array(props, dtype=np.float64).reshape(len(canonical), len(MOSES_PROPERTIES)),
        "passes_filters": np.array(passes, dtype=bool),
    }


def _describe(smiles: list[str], mapper: ChunkMapper, with_filters: bool) -> dict[str, Any]:
    """:func:`_describe_chunk` over a whole list, merged."""
    describe = functools.partial(_describe_chunk, with_filters=with_filters)
    parts = mapper.map(describe, smiles, min_parallel=_MIN_PARALLEL_DESCRIBE, max_chunk=_CHUNK,
                       progress="fingerprints, fragments, scaffolds")
    merged: dict[str, Any] = {"canonical": [], "fragments": Counter(), "scaffolds": Counter()}
    for part in parts:
        merged["canonical"] += part["canonical"]
        merged["fragments"].update(part["fragments"])
        merged["scaffolds"].update(part["scaffolds"])
    for key, width, dtype in (("fingerprints", _FP_BITS // 8, np.uint8), ("properties", len(MOSES_PROPERTIES), float)):
        merged[key] = np.concatenate([p[key] for p in parts]) if parts else np.zeros((0, width), dtype)
    merged["passes_filters"] = np.concatenate([p["passes_filters"] for p in parts]) if parts else np.zeros(0, bool)
    return merged


# --- ChemNet and Tanimoto on torch --------------------------------------------------------------

def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _chemnet_input(smiles: str) -> str:
    """The part of a SMILES that fcd_torch (MOSES's FCD) feeds to ChemNet: up to the first ``.``
    (ChemNet's end token) and at most 349 tokens."""
    from fcd.utils import tokenize

    head = smiles.split(".")[0]
    if len(head) < _CHEMNET_PAD:  # fewer characters than the limit: fewer tokens too
        return head
    tokens = tokenize(head)
    return head if len(tokens) < _CHEMNET_PAD else "".join(tokens[:_CHEMNET_PAD - 1])


def chemnet_activations(smiles: Sequence[str], device: str | None = None, batch_size: int = 512) -> np.ndarray:
    """ChemNet's penultimate-layer activations, shape ``(len(smiles), 512)``, for canonical SMILES.

    The input encoding of fcd_torch (MOSES's FCD): one-hot over ChemNet's vocabulary, scaled by
    the vocabulary size, padded to 350 tokens. ChemNet's weights ship inside the ``fcd`` wheel.
    """
    import torch
    from fcd import load_ref_model
    from fcd.utils import get_one_hot

    if not smiles:
        return np.zeros((0, 512), dtype=np.float32)
    device = device or _default_device()
    model = load_ref_model()
    outputs = []
    try:
        model.to(device)
        with torch.no_grad():
            for start in tqdm(range(0, len(smiles), batch_size), desc="ChemNet", unit="batch", leave=False,
                              disable=None if len(smiles) >= 20 * batch_size else True):
                one_hot = np.stack([get_one_hot(_chemnet_input(s), pad_len=_CHEMNET_PAD)
                                    for s in smiles[start:start + batch_size]])  # (B, 350, V)
                features = torch.from_numpy(one_hot / one_hot.shape[2]).float().to(device)  # (B, 350, V)
                last = model(features.transpose(1, 2))  # (B, 512): a view of the whole (B, T, 512) LSTM output
                outputs.append(last.cpu().numpy().copy())  # copy, or every batch's full output stays alive
    finally:
        model.to("cpu")  # the model is cached by fcd and shared; leave it where fcd expects it
    return np.concatenate(outputs)


def chemnet_moments(smiles: Sequence[str], device: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(512,)`` and covariance ``(512, 512)`` of the ChemNet activations; NaN below 2 molecules."""
    if len(smiles) < 2:
        return np.full(512, np.nan), np.full((512, 512), np.nan)
    activations = chemnet_activations(smiles, device).astype(np.float64)  # (N, 512)
    return activations.mean(0), np.cov(activations.T)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Square root of a covariance matrix; eigenvalues below rounding level count as zero."""
    eigenvalues, eigenvectors = np.linalg.eigh((cov + cov.T) / 2)
    floor = max(eigenvalues.max(), 0.0) * len(eigenvalues) * np.finfo(np.float64).eps
    eigenvalues = np.where(eigenvalues > floor, eigenvalues, 0.0)
    return (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Fréchet distance of two Gaussians: ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))``.

    The FCD formula of ``fcd.calculate_frechet_distance``, with ``tr (C_a C_b)^(1/2)`` taken as the
    sum of the singular values of ``C_b^(1/2) C_a^(1/2)`` (the same number, to 1e-14 relative on
    full-rank covariances): two symmetric eigendecompositions and one SVD take 0.2-0.3 s on
    512 x 512 ChemNet covariances where ``scipy.linalg.sqrtm`` took 2-4 s on a 2-core machine, and
    they stay accurate for the rank-deficient covariances of small samples (a set against itself
    gives 0 to rounding, not the ~1e-4 noise of a matrix square root).

    >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
    4.0
    """
    trace_root = np.linalg.svd(_psd_sqrt(cov_b) @ _psd_sqrt(cov_a), compute_uv=False).sum()
    diff = mean_a - mean_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def fcd_of_moments(gen: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray]) -> float:
    """FCD between two (mean, covariance) pairs; NaN when either side had fewer than 2 molecules."""
    if np.isnan(gen[0]).any() or np.isnan(ref[0]).any():
        return float("nan")
    return frechet_distance(ref[0], ref[1], gen[0], gen[1])


def _aggregate_tanimoto(ref_bits: np.ndarray, gen_bits: np.ndarray, agg: str, p: int, device: str,
                        batch: int = 5000) -> np.ndarray:
    """Per generated molecule, the max (``agg="max"``) or the power mean ``(mean T^p)^(1/p)``
    (``agg="mean"``) of its Tanimoto similarity to every reference molecule: MOSES's
    ``average_agg_tanimoto`` before its final mean. Fingerprints come packed, ``(N, 128)`` uint8."""
    import torch

    if len(ref_bits) == 0 or len(gen_bits) == 0:
        return np.zeros(len(gen_bits))

    def unpack(bits: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.unpackbits(bits, axis=1)).to(device=device, dtype=torch.float32)

    result = []
    for i in range(0, len(gen_bits), batch):
        gen = unpack(gen_bits[i:i + batch])  # (G, 1024)
        gen_on = gen.sum(1)  # (G,)
        best = torch.zeros(len(gen), dtype=torch.float64, device=device)  # (G,)
        total = torch.zeros(len(gen), dtype=torch.float64, device=device)  # (G,)
        for j in range(0, len(ref_bits), batch):
            ref = unpack(ref_bits[j:j + batch])  # (R, 1024)
            both = ref @ gen.T  # (R, G) bits on in both
            sims = both / (ref.sum(1, keepdim=True) + gen_on - both)  # (R, G)
            sims = torch.nan_to_num(sims, nan=1.0)  # two empty fingerprints count as identical, as in MOSES
            if agg == "max":
                best = torch.maximum(best, sims.max(0).values.double())
            else:
                total += (sims.double() ** p).sum(0)
        result.append(best if agg == "max" else (total / len(ref_bits)) ** (1.0 / p))
    return torch.cat(result).cpu().numpy()


# --- reference statistics, cached ---------------------------------------------------------------

@dataclass(frozen=True)
class ReferenceStats:
    """What the MOSES metrics need from one reference set (test or scaffold test)."""

    fingerprints: np.ndarray  # (N, 128) uint8: packed Morgan bits, radius 2, 1024 bits (SNN)
    fragments: dict[str, int]  # BRICS fragment SMILES -> count over the set (Frag)
    scaffolds: dict[str, int]  # Bemis-Murcko scaffold SMILES (>= 2 rings) -> count (Scaf)
    properties: dict[str, np.ndarray]  # MOSES property name -> (N,) values (Wasserstein metrics)
    chemnet_mean: np.ndarray  # (512,) mean ChemNet activation (FCD); NaN below 2 molecules
    chemnet_cov: np.ndarray  # (512, 512) covariance of the ChemNet activations (FCD)

    def __len__(self) -> int:
        return len(self.fingerprints)


def _content_key(kind: str, smiles: Sequence[str]) -> str:
    """Hash of a SMILES list and of everything that changes what is computed from it."""
    digest = hashlib.sha256()
    versions = f"{kind}|format {_CACHE_FORMAT}|rdkit {rdBase.rdkitVersion}|fcd {importlib.metadata.version('fcd')}"
    digest.update(versions.encode())
    for s in smiles:
        if not isinstance(s, str):
            raise TypeError(f"reference SMILES must be str, got {type(s).__name__}")
        digest.update(b"\n" + s.encode())
    return digest.hexdigest()[:24]


def _save_stats(path: Path, stats: ReferenceStats) -> None:
    arrays: dict[str, np.ndarray] = {
        "format": np.array(_CACHE_FORMAT),
        "fingerprints": stats.fingerprints,
        "chemnet_mean": stats.chemnet_mean,
        "chemnet_cov": stats.chemnet_cov,
    }
    for name in ("fragments", "scaffolds"):
        counts: dict[str, int] = getattr(stats, name)
        arrays[f"{name}_keys"] = np.array(list(counts), dtype=str)
        arrays[f"{name}_counts"] = np.array(list(counts.values()), dtype=np.int64)
    for name, values in stats.properties.items():
        arrays[f"property_{name}"] = values
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    _write_atomically(path, buffer.getvalue())


def _load_stats(path: Path) -> ReferenceStats | None:
    """Cached statistics, or ``None`` when the file is missing, damaged or of another format."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != _CACHE_FORMAT:
                return None
            return ReferenceStats(
                fingerprints=data["fingerprints"],
                fragments=dict(zip(data["fragments_keys"].tolist(), data["fragments_counts"].tolist())),
                scaffolds=dict(zip(data["scaffolds_keys"].tolist(), data["scaffolds_counts"].tolist())),
                properties={name: data[f"property_{name}"] for name in MOSES_PROPERTIES},
                chemnet_mean=data["chemnet_mean"],
                chemnet_cov=data["chemnet_cov"],
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        logger.warning("ignoring unreadable cache file %s (%s)", path, error)
        return None


def _stats_from_description(description: dict[str, Any], device: str | None) -> ReferenceStats:
    mean, cov = chemnet_moments(description["canonical"], device)
    return ReferenceStats(
        fingerprints=description["fingerprints"],
        fragments=dict(description["fragments"]),
        scaffolds=dict(description["scaffolds"]),
        properties={name: description["properties"][:, i] for i, name in enumerate(MOSES_PROPERTIES)},
        chemnet_mean=mean,
        chemnet_cov=cov,
    )


def reference_stats(smiles: Sequence[str], *, device: str | None = None, n_jobs: int | None = None,
                    cache_dir: Path | None = DEFAULT_CACHE_DIR) -> ReferenceStats:
    """Statistics of a reference set (MOSES's ``compute_intermediate_statistics``), computed once.

    With ``cache_dir`` the result is stored as ``moses-ref-<hash>.npz`` (no pickle), keyed by the
    SMILES and the RDKit and fcd versions, and read back on the next call. Invalid reference
    SMILES are skipped.
    """
    with ChunkMapper(n_jobs) as mapper:
        return _reference_stats(smiles, device, cache_dir, mapper)


def _reference_stats(smiles: Sequence[str], device: str | None, cache_dir: Path | None,
                     mapper: ChunkMapper) -> ReferenceStats:
    if isinstance(smiles, str):
        raise TypeError("smiles must be a sequence of SMILES, not one string")
    smiles = list(smiles)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"moses-ref-{_content_key('ref', smiles)}.npz"
        cached = _load_stats(path)
        if cached is not None:
            return cached
    logger.info("computing MOSES reference statistics of %d molecules", len(smiles))
    description = _describe(smiles, mapper, with_filters=False)
    logger.info("ChemNet activations of %d molecules on %s", len(description["canonical"]), device or "default device")
    stats = _stats_from_description(description, device)
    if path is not None:
        _save_stats(path, stats)
    return stats


def training_set(smiles: Iterable[str], *, n_jobs: int | None = None,
                 cache_dir: Path | None = DEFAULT_CACHE_DIR) -> frozenset[str]:
    """Canonical SMILES of a training set, for novelty (cached as ``moses-train-<hash>.txt.gz``).

    MOSES compares against its training SMILES as written; canonicalizing them with the same
    RDKit as the generated molecules keeps a molecule from looking new only because RDKit's
    canonical form changed since the file was written.
    """
    with ChunkMapper(n_jobs) as mapper:
        return _training_set(smiles, cache_dir, mapper)


def _training_set(smiles: Iterable[str], cache_dir: Path | None, mapper: ChunkMapper) -> frozenset[str]:
    if isinstance(smiles, str):
        raise TypeError("smiles must be an iterable of SMILES, not one string")
    smiles = list(smiles)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"moses-train-{_content_key('train', smiles)}.txt.gz"
        if path.is_file():
            try:
                return frozenset(gzip.decompress(path.read_bytes()).decode().split("\n")) - {""}
            except (OSError, EOFError, UnicodeDecodeError) as error:
                logger.warning("ignoring unreadable cache file %s (%s)", path, error)
    logger.info("canonicalizing %d training SMILES", len(smiles))
    parts = mapper.map(_canonicalize_chunk, smiles, min_parallel=_MIN_PARALLEL_CANONICALIZE, max_chunk=_CHUNK,
                       progress="canonicalizing")
    canonical = frozenset(c for part in parts for c in part if c)
    if path is not None:
        _write_atomically(path, gzip.compress("\n".join(sorted(canonical)).encode(), compresslevel=1))
    return canonical


# --- the metric table ---------------------------------------------------------------------------

def _k_label(k: int) -> str:
    return f"{k // 1000}k" if k >= 1000 and k % 1000 == 0 else str(k)


def _unique_at(valid: list[str], k: int) -> float:
    """MOSES ``fraction_unique``: distinct share of the first ``k`` valid canonical SMILES."""
    if len(valid) < k:
        warnings.warn(f"unique@{_k_label(k)} computed on {len(valid)} valid molecules", stacklevel=3)
    head = valid[:k]
    return len(set(head)) / len(head) if head else 0.0


def _wasserstein(ref: np.ndarray, gen: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    if len(ref) == 0 or len(gen) == 0:
        return float("nan")
    return float(wasserstein_distance(ref, gen))


def moses_metrics(
    generated: Sequence[str | None],
    test: Sequence[str] | ReferenceStats,
    test_scaffolds: Sequence[str] | ReferenceStats | None = None,
    train: Iterable[str] | None = None,
    *,
    k: Sequence[int] = (1000, 10000),
    device: str | None = None,
    n_jobs: int | None = None,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
) -> dict[str, float]:
    """The MOSES metric table of ``generated`` (MOSES ``get_all_metrics``), as plain floats.

    ``test`` and ``test_scaffolds`` are SMILES lists or precomputed :class:`ReferenceStats`; the
    ``/TestSF`` metrics are left out when ``test_scaffolds`` is ``None`` and ``Novelty`` when
    ``train`` is ``None`` (a ``set``/``frozenset`` is taken as canonical SMILES, as returned by
    :func:`training_set`). ``device`` runs ChemNet and the Tanimoto matrices (default: CUDA when
    available); ``n_jobs`` worker processes run RDKit (default: all cores); ``cache_dir`` keeps
    reference statistics between calls (``None``: no disk cache).
    """
    if isinstance(generated, str):
        raise TypeError("generated must be a sequence of SMILES, not one string")
    device = device or _default_device()
    generated = list(generated)
    metrics: dict[str, float] = {}
    with ChunkMapper(n_jobs) as mapper:
        parts = mapper.map(_canonicalize_chunk, generated, min_parallel=_MIN_PARALLEL_CANONICALIZE, max_chunk=_CHUNK)
        canonical = [c for part in parts for c in part]
        valid = [c for c in canonical if c is not None]
        metrics["valid"] = len(valid) / len(generated) if generated else 0.0
        for size in k:
            metrics[f"unique@{_k_label(size)}"] = _unique_at(valid, size)

        references = {"Test": test, "TestSF": test_scaffolds}
        stats = {
            name: ref if isinstance(ref, ReferenceStats)
            else _reference_stats(ref, device, cache_dir, mapper)
            for name, ref in references.items() if ref is not None
        }
        logger.info("describing %d valid generated molecules", len(valid))
        gen = _describe(valid, mapper, with_filters=True)
        logger.info("ChemNet activations of the generated molecules on %s", device)
        gen_moments = chemnet_moments(gen["canonical"], device)
        for name, ref in stats.items():
            logger.info("FCD, SNN, Frag and Scaf against %s (%d molecules)", name, len(ref))
            ref_moments = (ref.chemnet_mean, ref.chemnet_cov)
            metrics[f"FCD/{name}"] = fcd_of_moments(gen_moments, ref_moments)
            snn = _aggregate_tanimoto(ref.fingerprints, gen["fingerprints"], "max", 1, device)
            metrics[f"SNN/{name}"] = float(snn.mean()) if len(snn) else 0.0
            metrics[f"Frag/{name}"] = cosine_similarity(ref.fragments, gen["fragments"])
            metrics[f"Scaf/{name}"] = cosine_similarity(ref.scaffolds, gen["scaffolds"])

        logger.info("internal diversity, filters, property distances")
        for label, p in (("IntDiv", 1), ("IntDiv2", 2)):
            similarity = _aggregate_tanimoto(gen["fingerprints"], gen["fingerprints"], "mean", p, device)
            metrics[label] = float(1.0 - similarity.mean()) if len(similarity) else 0.0
        passes = gen["passes_filters"]
        metrics["Filters"] = float(passes.mean()) if len(passes) else 0.0
        for i, name in enumerate(MOSES_PROPERTIES):
            metrics[name] = _wasserstein(stats["Test"].properties[name], gen["properties"][:, i])

        if train is not None:
            known = train if isinstance(train, (set, frozenset)) else _training_set(train, cache_dir, mapper)
            distinct = set(valid)
            metrics["Novelty"] = len(distinct - known) / len(distinct) if distinct else 0.0
    return metrics
