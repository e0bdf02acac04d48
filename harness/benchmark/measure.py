"""Measuring one benchmark case in a process of its own.

Every case (one operator, one backbone in one mode, one task model) runs in a process of its own
(:func:`spawn`), so that cases cannot disturb one another's allocator state or caches: a fresh
interpreter (``python -m harness.benchmark SPEC``, 7 s of imports), or with ``--fork-server`` a
child forked from a server that imported torch and the harness once and ran nothing (a case
starts in a fraction of a second, but its times came out ~5-15% slower in a check here: 604 /
619 ms vs 519 / 593 ms for a DW-Conv-T inference step, so the tables use fresh interpreters and
the tests the fork server). The child builds the step of its case, times it with
:class:`torch.utils.benchmark.Timer` and measures the peak memory of one more step.

Timing: ``Timer.timeit(repeats)`` runs the step twice untimed (its own warm-up), then
``repeats`` times in one timed block; the result is the mean time of one step. ``warmup`` runs
beyond Timer's two are made first, so a case runs ``max(warmup, 2) + repeats`` steps, plus one
for the memory. Run cases several times interleaved (``rounds``) to get a median over rounds
that a busy machine disturbs less.

Peak memory is the peak of what one step allocates on top of its inputs (outputs, tensors saved
for backward, gradients, temporaries):

* CUDA: ``torch.cuda.max_memory_allocated()`` minus the allocation before the step;
* CPU: PyTorch has no allocator statistics for CPU tensors, so the peak resident set size is
  used. Two things make it exact for tensor memory: glibc is told (``mallopt``) to serve every
  block >= 64 KiB with its own mmap, so freed tensors go back to the OS at once instead of being
  reused silently from the heap (``malloc_trim`` first returns what the timed runs left there);
  and the kernel's high-water mark is reset (``/proc/self/clear_refs``) right before the step,
  so ``VmHWM - VmRSS(before)`` is the peak of that step alone. (ru_maxrss deltas would miss
  peaks below the import-time high-water mark; the profiler's memory events need replaying and
  miss allocations outside ATen.) Where clear_refs is not writable, the result is null and the
  JSON says so in ``mem_method``.
"""
import ctypes
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULT_TAG = 'BENCH_RESULT '
#: warm-up steps ``Timer.timeit`` makes before it times
TIMER_WARMUP = 2
#: case kind -> ``module:function`` that turns a spec into its step
STEP_BUILDERS = {
    'op': 'harness.benchmark.ops:op_step',
    'model': 'harness.benchmark.models:model_step',
    'task': 'harness.benchmark.tasks:task_step',
}

Step = Callable[[], None]
#: what ``--dtype`` takes
DTYPES = ('float32', 'bfloat16', 'float16')


def _status_kb(key: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_cpu_peak() -> bool:
    """Return unused heap memory to the OS, mmap big blocks from now on, reset VmHWM."""
    gc.collect()
    try:
        libc = ctypes.CDLL('libc.so.6')
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (also stops its dynamic growth)
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
        libc.malloc_trim(0)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak resident set size (VmHWM)
        return True
    except OSError:
        return False


def peak_memory(step: Step, device: str) -> Dict[str, Any]:
    """Run ``step`` once and measure what it allocates beyond what exists before it.

    Args:
        step (Callable): the step.
        device (str): ``'cpu'`` or ``'cuda'``.

    Returns:
        dict: ``peak_mem_mb`` (None where it cannot be measured) and ``mem_method``.
    """
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return dict(
            peak_mem_mb=(torch.cuda.max_memory_allocated() - base) / 2**20,
            mem_method='cuda.max_memory_allocated')
    if not sys.platform.startswith('linux') or not _reset_cpu_peak():
        step()
        return dict(peak_mem_mb=None, mem_method='unavailable')
    base = _status_kb('VmRSS')
    step()
    return dict(peak_mem_mb=(_status_kb('VmHWM') - base) / 1024, mem_method='VmHWM-VmRSS(mmap)')


def time_step(step: Step, threads: int, warmup: int, repeats: int, device: str) -> float:
    """Mean milliseconds of one step, timed with :class:`torch.utils.benchmark.Timer`.

    Args:
        step (Callable): the step.
        threads (int): torch intra-op threads while timing.
        warmup (int): untimed steps first (at least Timer's own :data:`TIMER_WARMUP`).
        repeats (int): timed steps.
        device (str): ``'cuda'`` steps are synchronized before each clock reading.

    Returns:
        float: milliseconds per step.
    """
    import torch
    from torch.utils.benchmark import Timer
    for _ in range(max(0, warmup - TIMER_WARMUP)):
        step()
    if device == 'cuda':
        torch.cuda.synchronize()
    timer = Timer(stmt='step()', globals={'step': step}, num_threads=threads)
    return timer.timeit(number=repeats).mean * 1e3


def build_step(spec: Dict[str, Any]) -> Step:
    """The step of a case, from the builder :data:`STEP_BUILDERS` names for its ``kind``."""
    module, name = STEP_BUILDERS[spec['kind']].split(':')
    return getattr(importlib.import_module(module), name)(spec)


def run_case(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Time one case in this process and measure its peak memory (unless ``spec['memory']`` is
    False).

    Args:
        spec (dict): ``kind``, ``device``, ``threads``, ``warmup``, ``repeats`` and what the
            kind's builder reads.

    Returns:
        dict: ``time_ms``, ``peak_mem_mb``, ``mem_method`` and what the builder adds through
        the step's ``info`` attribute (e.g. the implementation chosen).
    """
    import torch
    torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)
    step = build_step(spec)
    result: Dict[str, Any] = dict(
        time_ms=time_step(step, spec['threads'], spec['warmup'], spec['repeats'], spec['device']))
    if spec.get('memory', True):
        result.update(peak_memory(step, spec['device']))
    else:
        result.update(peak_mem_mb=None, mem_method='not measured')
    result.update(getattr(step, 'info', {}))
    return result


#: what the fork server imports before it forks the children of the cases
_PRELOAD = ['torch', 'harness.benchmark.ops', 'harness.benchmark.models', 'harness.benchmark.tasks']
_FORK_SERVER: List[Any] = []


def _fork_server() -> Any:
    """The multiprocessing context whose children :func:`spawn` starts (made once)."""
    if not _FORK_SERVER:
        import multiprocessing
        ctx = multiprocessing.get_context('forkserver')
        ctx.set_forkserver_preload(_PRELOAD)
        _FORK_SERVER.append(ctx)
    return _FORK_SERVER[0]


def _child(spec: Dict[str, Any], conn: Any, log: str) -> None:
    """A case's process: its output to ``log``, its result (or error line) through ``conn``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        conn.send(run_case(spec))
    except BaseException as exc:  # the parent reports it as the case's error
        conn.send(dict(error=f'{type(exc).__name__}: {exc}'.splitlines()[0]))
        raise


def _spawn_fresh(spec: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """:func:`run_case` in a fresh interpreter (``python -m harness.benchmark SPEC``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec['threads']))
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [sys.executable, '-m', 'harness.benchmark', json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f'timed out after {timeout:.0f} s')
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']
    return dict(error=f'exit {proc.returncode}: {tail[0]}')


def spawn(spec: Dict[str, Any], timeout: float, fork_server: bool = False) -> Dict[str, Any]:
    """Run :func:`run_case` in a process of its own: a fresh interpreter, or with
    ``fork_server`` a child of the fork server; ``{'error': ...}`` if it fails or times out."""
    if not fork_server:
        return _spawn_fresh(spec, timeout)
    import tempfile
    ctx = _fork_server()
    receive, send = ctx.Pipe(duplex=False)
    with tempfile.NamedTemporaryFile(prefix='bench_case_', suffix='.log') as log:
        proc = ctx.Process(target=_child, args=(spec, send, log.name), daemon=True)
        proc.start()
        send.close()
        try:
            if receive.poll(timeout):
                result = receive.recv()
                proc.join()
                return result
            error = f'timed out after {timeout:.0f} s'
        except EOFError:  # died without a word: killed, or crashed in native code
            proc.join()
            tail = Path(log.name).read_text(errors='replace').strip().splitlines()[-1:]
            error = f'exit {proc.exitcode}: {tail[0] if tail else "no output"}'
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join()
            receive.close()
    return dict(error=error)


def _median_of_rounds(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    good = [r for r in results if 'error' not in r]
    if not good:
        return results[0]
    times = [r['time_ms'] for r in good]
    mems = [r['peak_mem_mb'] for r in good if r.get('peak_mem_mb') is not None]
    merged = dict(good[0], time_ms=statistics.median(times), round_ms=times)
    merged['peak_mem_mb'] = max(mems) if mems else None
    return merged


def measure_all(specs: Dict[str, Dict[str, Any]],
                timeout: float,
                rounds: int = 1,
                quiet: bool = False,
                fork_server: bool = False) -> Dict[str, Dict[str, Any]]:
    """Measure every case, each in its own process, ``rounds`` times interleaved (A B C, A B C,
    ...), with a ``[i/N] measured ... (elapsed, ETA)`` line on stderr per case run.

    Args:
        specs (dict): name -> spec of :func:`run_case`.
        timeout (float): seconds per case run.
        rounds (int): times each case runs; the time is the median over rounds, the memory the
            largest. Defaults to 1.
        quiet (bool): no progress lines. Defaults to False.
        fork_server (bool): children of the fork server instead of fresh interpreters
            (see the module docstring). Defaults to False.

    Returns:
        dict: name -> result (with ``round_ms``), or ``{'error': ...}`` if every round failed.
    """
    progress = Progress(len(specs) * rounds)
    runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in specs}
    for i in range(rounds):
        for name, spec in specs.items():
            result = spawn(spec, timeout, fork_server)
            runs[name].append(result)
            if not quiet:
                tag = f' (round {i + 1})' if rounds > 1 else ''
                progress.step(f'measured {name}{tag}: {format_result(result)}')
    return {name: _median_of_rounds(results) for name, results in runs.items()}


def format_result(r: Dict[str, Any]) -> str:
    """``'12.3 ms, peak 45 MB'`` or ``'ERROR ...'``."""
    if 'error' in r:
        return 'ERROR ' + r['error']
    mem = r.get('peak_mem_mb')
    return f"{r['time_ms']:.1f} ms, peak {'n/a' if mem is None else f'{mem:.0f} MB'}"


def fmt(value: Optional[float], spec: str) -> str:
    """``format(value, spec)``, ``'n/a'`` for None."""
    return 'n/a' if value is None else format(value, spec)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """``a / b``; None without both (or with ``b`` zero)."""
    return a / b if a is not None and b else None


def errors_of(results: Dict[str, Dict[str, Any]]) -> Dict[str, str]:
    """Case key -> error, for the cases that failed."""
    return {k: r['error'] for k, r in results.items() if 'error' in r}


def mem_method_of(results: Dict[str, Dict[str, Any]]) -> Optional[str]:
    """How the peaks were measured (the first case that says)."""
    return next((r['mem_method'] for r in results.values() if 'mem_method' in r), None)


def torch_version() -> str:
    """The installed torch version."""
    import torch
    return torch.__version__


def main(argv: Optional[List[str]] = None) -> int:
    """The child's entry point: run the case of the JSON spec in ``argv[0]``, print its result
    after :data:`RESULT_TAG`."""
    argv = sys.argv[1:] if argv is None else argv
    print(RESULT_TAG + json.dumps(run_case(json.loads(argv[0]))), flush=True)
    return 0


@dataclass
class RunConfig:
    """How every case of one command runs.

    Args:
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        dtype (str): one of :data:`DTYPES`: the tensors' dtype (ops) or the autocast dtype
            (models, tasks; ``'float32'``: none). Defaults to ``'float32'``.
        threads (int): torch intra-op threads. Defaults to 1.
        warmup (int): untimed steps (at least 2, Timer's). Defaults to 3.
        repeats (int): timed steps. Defaults to 10.
        rounds (int): interleaved runs of every case. Defaults to 1.
        timeout (float): seconds per case run. Defaults to 1800.
        quiet (bool): no progress lines on stderr. Defaults to False.
        fork_server (bool): cases start as children of a fork server (fast to start, for
            checks of the plumbing) instead of fresh interpreters. Defaults to False.
    """
    device: str = 'cpu'
    dtype: str = 'float32'
    threads: int = 1
    warmup: int = 3
    repeats: int = 10
    rounds: int = 1
    timeout: float = 1800
    quiet: bool = False
    fork_server: bool = False

    #: the settings a case's process reads
    CASE_KEYS = ('device', 'dtype', 'threads', 'warmup', 'repeats')

    def spec(self, **case: Any) -> Dict[str, Any]:
        """The spec of one case: these settings and the case's own keys."""
        return dict({k: getattr(self, k) for k in self.CASE_KEYS}, **case)

    def measure(self, specs: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
        """:func:`~.measure.measure_all` with these settings."""
        return measure_all(specs, self.timeout, self.rounds, self.quiet, self.fork_server)

    def describe(self) -> Dict[str, Any]:
        """The settings for a report, with the torch version."""
        return dict(self.spec(rounds=self.rounds), torch=torch_version())
