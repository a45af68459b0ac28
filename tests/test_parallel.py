"""Process-pool maps: order, chunking, and worker processes that never import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from molvae.chem import decode_selfies_list, encode_selfies
from molvae.parallel import ChunkMapper, resolve_workers

SMILES = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "C1CC1", "O=C=O", "CCCl"]


def test_chunks_respect_max_chunk_and_order():
    with ChunkMapper(workers=1) as mapper:
        assert mapper.map(list, range(7), min_parallel=100, max_chunk=3) == [[0, 1, 2], [3, 4, 5], [6]]
        assert mapper.map(list, [], min_parallel=100) == []


def test_pool_gives_the_same_results_in_the_same_order():
    selfies = [encode_selfies(s) for s in SMILES] * 3 + ["[C][Branch1]"]
    with ChunkMapper(workers=1) as serial:
        expected = serial.flat_map(decode_selfies_list, selfies, min_parallel=1)
    with ChunkMapper(workers=2) as parallel:
        # one item per task: 22 tasks come back from two processes, in input order
        assert parallel.flat_map(decode_selfies_list, selfies, min_parallel=1, max_chunk=1) == expected
        assert parallel.flat_map(decode_selfies_list, selfies[:3], min_parallel=1) == expected[:3]  # pool reused
    assert expected[:2] == ["CCO", "c1ccccc1"]


def test_worker_count():
    assert resolve_workers(3) == 3
    assert resolve_workers(0) >= 1 and resolve_workers(None) == resolve_workers(0)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        ChunkMapper(workers=-1)


def test_worker_modules_do_not_import_torch():
    # Spawned workers import the module of the function they run; torch there would cost each
    # worker ~260 MiB and ~2 s to start (16 workers on a GPU machine: 4 GiB).
    code = "import sys, molvae.chem, molvae.moses, molvae.parallel; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
