"""Run the tiles of a CPU operator on single-threaded workers.

The blocked I-Dynamic paths issue many small ATen ops (one per kernel tap and tile). Left to
ATen's intra-op parallelism, each of them is split over the OpenMP threads and ends in a barrier:
thousands of barriers per call, and on a shared machine every one of them waits for the slowest
(descheduled) thread. Here each worker thread runs whole tiles with single-threaded ops, taking
the next tile when it is done, so a call has one barrier per phase.

Worker threads get their own OpenMP and MKL thread counts (both are per thread in ATen: the
process-wide default is left as it was). The caller's grad and inference modes are passed on to
the workers; autocast is not (callers run their tiles with autocast off).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List, Sequence

import torch

_LOCK = threading.Lock()
_POOL: dict = {}  # 'pool', 'threads', 'pid'
#: set to False to run tiles on the calling thread with ATen's intra-op parallelism
PARALLEL_TILES = [True]


def _worker_pool(threads: int) -> ThreadPoolExecutor:
    """The pool of ``threads`` single-threaded workers (made anew after a fork, whose child has
    none of its parent's threads)."""
    with _LOCK:
        if _POOL.get('threads') == threads and _POOL.get('pid') == os.getpid():
            return _POOL['pool']
        if _POOL.get('pid') == os.getpid():
            _POOL['pool'].shutdown(wait=False)
        ready = threading.Barrier(threads + 1)

        def init() -> None:
            # ATen sets a new thread's count from the process-wide one on its first query:
            # query first, then set
            torch.get_num_threads()
            torch.set_num_threads(1)
            ready.wait()

        pool = ThreadPoolExecutor(threads, thread_name_prefix='idynamic', initializer=init)
        for _ in range(threads):
            pool.submit(int)
        ready.wait()
        torch.set_num_threads(threads)  # what the workers' set_num_threads(1) changed globally
        _POOL.update(pool=pool, threads=threads, pid=os.getpid())
        return pool


def run_tiles(fn: Callable[[Any], Any], phases: Sequence[Sequence[Any]],
              device: torch.device) -> List[Any]:
    """``[fn(tile) for phase in phases for tile in phase]``, in that order.

    On a CPU with several intra-op threads, the tiles of a phase run concurrently on as many
    single-threaded workers (so they must write disjoint memory); phases run one after the other.
    Elsewhere, or for a phase of one tile, the calling thread runs them.
    """
    threads = torch.get_num_threads() if device.type == 'cpu' and PARALLEL_TILES[0] else 1
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def in_caller_mode(tile: Any) -> Any:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(tile)

    results: List[Any] = []
    for tiles in phases:
        if threads <= 1 or len(tiles) <= 1:
            results.extend(fn(t) for t in tiles)
        else:
            results.extend(_worker_pool(threads).map(in_caller_mode, tiles))
    return results
