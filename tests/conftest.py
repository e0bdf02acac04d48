import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

import pytest
import torch
import torch.nn as nn

# The repository root must win over site-packages: mmseg installs a top-level ``tests`` package
# and the ``tools`` scripts are imported by path in some tests.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import backbones  # noqa: E402,F401  (registers everything)

#: Under pytest-xdist (``tools/run_tests.sh``: two workers, one per core here), a worker and the
#: processes it starts compute on one thread: the workers already fill the cores, and OpenMP
#: threads that wait for each other on a shared core cost minutes (see :func:`one_thread`).
XDIST_WORKER = os.environ.get('PYTEST_XDIST_WORKER')
if XDIST_WORKER:
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
    torch.set_num_threads(1)


@pytest.fixture(scope='module')
def module_tmp(request, tmp_path_factory) -> Iterator[Callable[[str], Path]]:
    """``module_tmp(name)`` makes a new folder for outputs that the tests of one module share
    (toy runs of full-size models: a few hundred MB per checkpoint). The folders are removed
    when the module's tests are done, unless one of them failed, as pytest removes the
    ``tmp_path`` of a test that passed (``tmp_path_retention_policy`` in setup.cfg): kept, the
    suite's outputs come to 16 GB, more than a CI machine may have free."""
    made: List[Path] = []
    failed_before = request.session.testsfailed

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    if request.session.testsfailed == failed_before:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope='module')
def workers_tmp(module_tmp, tmp_path_factory) -> Callable[[str], Path]:
    """``workers_tmp(name)``: a new folder like ``module_tmp(name)``; under pytest-xdist, the
    one folder ``name`` that every worker of the session sees, beside their own temporary
    folders, for outputs that tests on several workers need (make them once, under a lock). It
    is removed by pytest with the rest at the end of a session that passed."""

    def make(name: str) -> Path:
        if not XDIST_WORKER:
            return module_tmp(name)
        folder = tmp_path_factory.getbasetemp().parent / name
        folder.mkdir(exist_ok=True)
        return folder

    return make


@pytest.fixture(scope='session')
def toy_data(tmp_path_factory) -> Callable[..., Path]:
    """A factory of toy datasets for the whole test session: ``toy_data(task, seed=0, **sizes)``
    builds the toy dataset of ``task`` (``'imagenet'``, ``'coco'``, ``'ade20k'``) with
    :func:`harness.toy.ensure_toy_data` under the session's temporary folder (never the
    repository's ``data/toy``) and returns its folder; a second call with the same task, seed
    and sizes (defaults filled in) returns the same folder without building again. The
    datasets are shared: a test that changes one copies it first."""
    from harness.toy import TOY_DATASETS, ensure_toy_data
    built: Dict[Tuple, Path] = {}

    def make(task: str, seed: int = 0, **sizes: int) -> Path:
        if task not in TOY_DATASETS:
            raise ValueError(f'unknown toy dataset task {task!r}')
        key = (task, seed, tuple(sorted(TOY_DATASETS[task].resolve_sizes(sizes).items())))
        if key not in built:
            root = tmp_path_factory.mktemp(f'toy_{task}')
            built[key] = ensure_toy_data(task, root, seed=seed, **sizes)
        return built[key]

    return make


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device: the structure (classes,
    parameter names and shapes, ``requires_grad``) is built, the random initialisation of the
    weights, most of the time of building a large model on a CPU, is not. Buffers stay where
    they are; ``model.to('meta')`` moves them too."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: Optional[nn.Parameter]) -> None:
        register(module, name, param)
        if param is not None and param.device.type != 'meta':
            module._parameters[name] = nn.Parameter(
                param.to('meta'), requires_grad=param.requires_grad)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


@pytest.fixture(scope='session')
def meta_weights() -> Callable[[], ContextManager[None]]:
    """A context manager factory: ``with meta_weights(): model = MODELS.build(cfg)`` builds
    ``model`` with its parameters on the meta device (see :func:`_parameters_on_meta`), for
    tests that check structure, not values."""
    return _parameters_on_meta


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch computes on one thread during the test. For the small models of most tests a
    second thread gains little on an idle machine, and on a busy one it costs a lot: OpenMP's
    threads wait for each other at every op (measured: tests/test_backbones.py took 12 s with
    one thread and 300 s with two while other jobs ran on the 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    """A test that builds a Runner leaves mmengine's current DefaultScope behind (e.g.
    'mmengine'), and later bare builds would look in that registry; undo it after each test."""
    from mmengine.registry import DefaultScope
    before = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)


# ---------------------------------------------------------------------------------------------
# Slurm (issue 14): a throwaway one-node cluster (tools/local_slurm.sh) for tests/test_slurm.py.
# Without the packages the tests skip, unless REQUIRE_SLURM=1 (CI), where that is a failure.

REQUIRE_SLURM_ENV = 'REQUIRE_SLURM'


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (slurmctld, slurmd), so that the test cluster never
    meets another one on this machine."""
    import socket
    for _ in range(50):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(('127.0.0.1', port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError('no two consecutive free ports')


@pytest.fixture(scope='session')
def slurm_cluster(tmp_path_factory):
    """A running Slurm cluster (one node, partition ``local``), ``SLURM_CONF`` pointing at it
    for the test session; yields ``dict(conf=..., partition='local', node=<node name>)``."""
    import shutil
    import subprocess
    missing = [
        c for c in ('sbatch', 'squeue', 'slurmctld', 'slurmd', 'munged') if not shutil.which(c)
    ]
    problem = ''
    if missing:
        problem = (f'Slurm is not installed ({", ".join(missing)} not found; apt-get install '
                   '-y slurm-wlm munge)')
    elif os.geteuid() != 0:
        problem = 'the local Slurm cluster needs root (slurmd starts the jobs)'
    if problem:
        if os.environ.get(REQUIRE_SLURM_ENV) == '1':
            pytest.fail(f'{problem}, and {REQUIRE_SLURM_ENV}=1 forbids skipping')
        pytest.skip(problem)
    folder = tmp_path_factory.mktemp('slurm')
    # OMP_NUM_THREADS=1 as in a test worker: the node's CPUs must not follow it
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        LOCAL_SLURM_DIR=str(folder),
        LOCAL_SLURM_PORT=str(_free_port_pair()))
    script = os.path.join(ROOT, 'tools', 'local_slurm.sh')
    proc = subprocess.run(['bash', script, 'start'],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, f'local_slurm.sh start failed: {proc.stderr}'
    conf = proc.stdout.strip().split('=', 1)[1]
    before = os.environ.get('SLURM_CONF')
    os.environ['SLURM_CONF'] = conf
    node = subprocess.run(['sinfo', '-h', '-N', '-o', '%N'], capture_output=True,
                          text=True).stdout.split()[0]
    try:
        yield dict(conf=conf, partition='local', node=node, dir=str(folder))
    finally:
        subprocess.run(['bash', script, 'stop'], env=env, capture_output=True, timeout=120)
        if before is None:
            os.environ.pop('SLURM_CONF', None)
        else:
            os.environ['SLURM_CONF'] = before
