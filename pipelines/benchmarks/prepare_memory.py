"""Peak memory and wall time of preparing a data set for training, worker processes included.

Runs what ``molvae train`` does before its first step (read, clean, deduplicate and SELFIES-encode
every row, build the vocabulary, tokenize into the in-memory tensor) and samples the proportional
set size (PSS) of this process and all its children every 0.2 s, so pages shared between the
worker processes are counted once. The issue's bound: the full MOSES training set under 4 GiB.

    python pipelines/benchmarks/prepare_memory.py data/moses/train.csv.gz --config pipelines/recipes/moses.toml
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:  # the process ended between listing and reading
        pass
    return 0


class TreeMemory(threading.Thread):
    """Samples the PSS of this process tree until stopped; ``peak_mib`` is the largest sum seen."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak_mib, self.peak_processes = interval, 0.0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._stop_event.wait(self.interval):
            pids = [me, *_children(me)]
            total = sum(_pss_kib(p) for p in pids) / 1024
            if total > self.peak_mib:
                self.peak_mib, self.peak_processes = total, len(pids)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="SMILES file (CSV, .smi, .txt, optionally gzipped)")
    parser.add_argument("--config", help="TOML config; its [data] section is used")
    parser.add_argument("--workers", type=int, default=0, help="cleaning processes (0 = all cores)")
    parser.add_argument("--cache-dir", help="keep the prepared data here for later training runs (default: a "
                        "temporary directory); a cache hit there would measure nothing, so it is refused")
    parser.add_argument("--out", help="also write the figures as JSON")
    args = parser.parse_args()
    # Imported here, not at the top: spawned worker processes re-import this script, and they
    # should load only the torch-free module of the function they run, as under `molvae train`.
    from molvae.config import load_config
    from molvae.data import prepare, tokenize
    from molvae.vocab import Vocabulary

    if not Path("/proc/self/smaps_rollup").exists():
        raise SystemExit("this measurement reads /proc/<pid>/smaps_rollup and needs Linux")
    config = load_config(args.config).data
    monitor = TreeMemory()
    monitor.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        config = dataclasses.replace(config, cache_dir=args.cache_dir or scratch, workers=args.workers)
        before = set(Path(config.cache_dir).glob("prepared-*"))
        prepared = prepare(args.data, config)
        prepared_s = time.perf_counter() - started
        if not set(Path(config.cache_dir).glob("prepared-*")) - before:
            raise SystemExit(f"{args.data} was already prepared in {config.cache_dir}: nothing was measured")
        vocab = Vocabulary.build(prepared.kept["selfies"])
        data = tokenize(prepared.kept["selfies"].tolist(), prepared.kept["smiles"].tolist(), vocab)
    wall = time.perf_counter() - started
    monitor.stop()
    figures = {
        "file": str(args.data),
        "rows_in": prepared.n_rows,
        "rows_kept": len(prepared.kept),
        "rows_rejected": len(prepared.rejected),
        "tokens_shape": list(data.tokens.shape),
        "prepare_s": round(prepared_s, 1),
        "total_s": round(wall, 1),
        "rows_per_s": round(prepared.n_rows / prepared_s, 1),
        "peak_pss_mib": round(monitor.peak_mib, 1),
        "processes_at_peak": monitor.peak_processes,
        "cpu_cores": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
