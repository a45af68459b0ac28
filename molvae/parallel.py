"""Chunked process-pool maps for per-molecule RDKit and SELFIES work.

Workers start with ``spawn`` (forking a process that holds torch's thread pools or a CUDA
context is unsafe) and import only the module of the function they run. Keep those functions in
torch-free modules (:mod:`molvae.chem`, :mod:`molvae.moses`): a worker then starts in about a
second and holds tens of MiB instead of the hundreds that importing torch costs, which matters
with 16 workers on a GPU machine.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["ChunkMapper", "resolve_workers"]

log = logging.getLogger(__name__)
_LOG_EVERY = 60.0  # seconds between progress log lines when there is no terminal

T = TypeVar("T")


def resolve_workers(workers: int | None) -> int:
    """``workers`` processes, where 0 or ``None`` means one per core."""
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = all cores), got {workers}")
    return workers or os.cpu_count() or 1


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when its parent is gone (killed without a chance to
    shut the pool down), instead of leaving it blocked on the task queue for ever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class ChunkMapper:
    """Maps a function over chunks of a list: in this process for small inputs (or one worker),
    otherwise in a pool of worker processes that starts on first need and is reused until
    :meth:`close` (or the end of a ``with`` block).

    >>> with ChunkMapper(workers=1) as mapper:
    ...     mapper.map(sum, [1, 2, 3, 4, 5], min_parallel=100, max_chunk=2)
    [3, 7, 5]
    """

    def __init__(self, workers: int | None = 0) -> None:
        self.workers = resolve_workers(workers)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, func: Callable[[list], T], items: Sequence[Any], *, min_parallel: int,
            max_chunk: int = 2000, progress: str | None = None) -> list[T]:
        """``[func(chunk) for chunk in chunks of items]``, in order.

        Chunks hold at most ``max_chunk`` items and, in the pool, at least four chunks go to each
        worker so that a slow chunk does not leave the others idle. ``progress`` names a tqdm bar
        counted in items (shown only on a terminal).
        """
        items = list(items)
        parallel = self.workers > 1 and len(items) >= min_parallel
        per_worker = math.ceil(len(items) / (4 * self.workers)) if parallel else len(items)
        size = max(1, min(max_chunk, per_worker))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        if parallel and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                             initializer=_exit_with_parent, initargs=(os.getpid(),))
        results = self._pool.map(func, chunks) if parallel else map(func, chunks)
        out = []
        with tqdm(total=len(items), desc=progress, unit="mol", disable=None if progress else True) as bar:
            started = last = time.perf_counter()
            done = 0
            for chunk, result in zip(chunks, results):
                out.append(result)
                bar.update(len(chunk))
                done += len(chunk)
                if progress and bar.disable and time.perf_counter() - last >= _LOG_EVERY:
                    last = time.perf_counter()  # no terminal for the bar (a run logging to a file): a log line
                    log.info("%s: %d of %d molecules (%.0f%%), %.0f molecules/s", progress, done, len(items),
                             100 * done / len(items), done / max(last - started, 1e-9))
        return out

    def flat_map(self, func: Callable[[list], list[T]], items: Sequence[Any], **kwargs: Any) -> list[T]:
        """Like :meth:`map` for a ``func`` that returns one result per item: the results, flattened."""
        return [result for part in self.map(func, items, **kwargs) for result in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> ChunkMapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
