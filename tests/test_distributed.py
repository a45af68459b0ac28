"""DistributedDataParallel on CPU: two processes (gloo), spawned from the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_training_agrees_and_finishes(tmp_path):
    result = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["max_grad_diff"] < 1e-5  # DDP's averaged gradient == the whole-batch gradient
        assert rank["epochs"] == 2 and rank["stop_reason"] == "completed"
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=0, abs=1e-9)  # weights stay in sync
