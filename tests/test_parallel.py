"""Process-pool maps: order, chunking, and worker processes that never import torch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

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


def test_workers_end_when_their_parent_is_killed(tmp_path):
    # A parent killed with SIGKILL cannot shut its pool down; its workers must not linger.
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from molvae.chem import decode_selfies_list\n"
        "from molvae.parallel import ChunkMapper\n"
        "if __name__ == '__main__':\n"
        "    mapper = ChunkMapper(workers=2)\n"
        "    mapper.map(decode_selfies_list, ['[C]'] * 4, min_parallel=1)\n"
        "    print(' '.join(str(p) for p in mapper._pool._processes), flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (now init) has to reap it


def test_progress_is_logged_when_there_is_no_terminal(monkeypatch, caplog):
    import logging

    import molvae.parallel as parallel

    monkeypatch.setattr(parallel, "_LOG_EVERY", 0.0)
    with caplog.at_level(logging.INFO, logger="molvae.parallel"), ChunkMapper(workers=1) as mapper:
        assert mapper.flat_map(_double, list(range(10)), min_parallel=100, max_chunk=5, progress="doubling") == \
            [2 * i for i in range(10)]
    assert "doubling: 10 of 10 molecules (100%)" in caplog.text  # pytest captures output: no terminal


def _double(chunk: list[int]) -> list[int]:
    return [2 * i for i in chunk]
