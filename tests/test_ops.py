"""The dynamic depth-wise convolution operators against their unfold references."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._python_dispatch import TorchDispatchMode

from backbones.ops import (IDynamicDWConvFunction, available_impls, cpu_kernels, dynamic_dwconv,
                           dynamic_dwconv_reference)
from backbones.ops import idynamic as idynamic_mod
from backbones.ops import idynamic_dwconv, idynamic_dwconv_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (B, C, H, W, K, G): odd maps, batch 1, G in {1, 4, C}, K in {3, 7}, a kernel larger than the map
SHAPES = [
    (2, 8, 13, 9, 3, 4),
    (1, 8, 13, 9, 7, 4),
    (2, 6, 7, 5, 7, 1),
    (2, 6, 9, 11, 3, 6),
    (1, 4, 3, 2, 7, 2),
]


def _inputs(b, c, h, w, k, g, dtype=torch.float64):
    x = torch.randn(b, c, h, w, dtype=dtype, requires_grad=True)
    weight = torch.randn(b, g, k, k, h, w, dtype=dtype, requires_grad=True)
    return x, weight


def _fwd_bwd(fn, x, weight):
    y = fn(x, weight)
    # exactly representable in every dtype, so all dtypes see the same grad_y
    grad_y = ((torch.arange(y.numel()) % 17 - 8) / 8).to(y.dtype).view_as(y)
    gx, gw = torch.autograd.grad(y, (x, weight), grad_y)
    return y, gx, gw


@pytest.fixture(params=['torch', 'torch_blocks', 'cpp'])
def cpu_impl(request, monkeypatch) -> str:
    """The CPU implementations: 'torch' as one block and as one (sample, group) plane per block,
    and the compiled kernels."""
    if request.param == 'torch_blocks':
        monkeypatch.setattr(idynamic_mod, '_CPU_BLOCK_ELEMS', 1)
        return 'torch'
    return request.param


def test_the_cpu_kernels_build_here():
    """A machine with a C++ compiler (CI's) builds them: otherwise 'auto' would quietly fall back
    to the slower 'torch' path and the 'cpp' cases below would test nothing."""
    assert cpu_kernels.available(), cpu_kernels.unavailable_reason()


def _path_without_ninja(tmp_path) -> str:
    """PATH with every ``ninja`` hidden (its folders replaced by copies of links to everything
    else in them), as on a machine whose only ninja is the virtual environment's."""
    venv_bin = os.path.dirname(sys.executable)
    folders = []
    for i, folder in enumerate(os.environ.get('PATH', '').split(os.pathsep)):
        if not folder or os.path.abspath(folder) == venv_bin or not os.path.isdir(folder):
            continue
        if os.path.exists(os.path.join(folder, 'ninja')):
            shadow = tmp_path / f'bin{i}'
            shadow.mkdir()
            for name in os.listdir(folder):
                if name != 'ninja':
                    (shadow / name).symlink_to(os.path.join(folder, name))
            folder = str(shadow)
        folders.append(folder)
    return os.pathsep.join(folders)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_cpu_kernels_build_from_nothing_with_the_projects_own_ninja(tmp_path):
    """A fresh machine: no build cache, and no ninja on PATH but the one the install puts in the
    virtual environment (PyTorch's builder needs it on PATH). The build must succeed and give the
    reference's values."""
    script = textwrap.dedent("""
        import shutil, torch
        assert shutil.which('ninja') is None, shutil.which('ninja')
        from backbones.ops import cpu_kernels, idynamic_dwconv, idynamic_dwconv_reference
        assert cpu_kernels.available(), cpu_kernels.unavailable_reason()
        x, w = torch.randn(2, 4, 5, 6), torch.randn(2, 2, 3, 3, 5, 6)
        y = idynamic_dwconv(x, w, impl='cpp')
        torch.testing.assert_close(y, idynamic_dwconv_reference(x, w))
        print('built')
    """)
    env = dict(
        os.environ,
        PATH=_path_without_ninja(tmp_path),
        TORCH_EXTENSIONS_DIR=str(tmp_path / 'extensions'))
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0 and 'built' in proc.stdout, proc.stderr[-3000:]
    assert any((tmp_path / 'extensions').rglob('*.so'))


@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'x'.join(map(str, s)))
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_idynamic_matches_unfold(shape, dtype, tol, cpu_impl):
    x, weight = _inputs(*shape, dtype=dtype)
    got = _fwd_bwd(lambda a, b: idynamic_dwconv(a, b, impl=cpu_impl), x, weight)
    ref = _fwd_bwd(idynamic_dwconv_reference, x, weight)
    for name, g, r in zip(('y', 'grad_x', 'grad_weight'), got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype, name
        torch.testing.assert_close(g, r, rtol=tol, atol=tol, msg=name)


def test_idynamic_auto_is_the_function_on_cpu(monkeypatch):
    monkeypatch.delenv(idynamic_mod.ENV_IMPL, raising=False)
    x, weight = _inputs(1, 4, 5, 5, 3, 2)
    assert type(idynamic_dwconv(x, weight).grad_fn).__name__ == 'IDynamicDWConvFunctionBackward'
    assert idynamic_mod._resolve_impl('auto', x) == 'cpp'
    monkeypatch.setattr(cpu_kernels, '_build', lambda: 'no compiler')
    assert idynamic_mod._resolve_impl('auto', x) == 'torch'
    with pytest.raises(
            ValueError, match="impl='cpp' but the CPU kernels could not be built: "
            'no compiler'):
        idynamic_dwconv(x, weight, impl='cpp')
    monkeypatch.undo()
    monkeypatch.setenv(idynamic_mod.ENV_IMPL, 'unfold')
    assert 'IDynamicDWConvFunction' not in type(idynamic_dwconv(x, weight).grad_fn).__name__
    monkeypatch.setenv(idynamic_mod.ENV_IMPL, 'bogus')
    with pytest.raises(ValueError):
        idynamic_dwconv(x, weight)


@pytest.mark.parametrize('impl', ['torch', 'cpp'])
@pytest.mark.parametrize('shape', [(1, 4, 5, 4, 3, 2), (2, 3, 4, 5, 7, 1), (1, 2, 3, 3, 3, 2)])
def test_idynamic_gradcheck(shape, impl):
    x, weight = _inputs(*shape)
    assert torch.autograd.gradcheck(lambda a, b: IDynamicDWConvFunction.apply(a, b, impl),
                                    (x, weight))


@pytest.mark.parametrize('impl', ['torch', 'cpp'])
@pytest.mark.parametrize('dtype,ulp', [(torch.bfloat16, 2.0**-8), (torch.float16, 2.0**-11)])
def test_idynamic_half_precision(dtype, ulp, impl):
    """On inputs representable in ``dtype``, forward and gradients are the float32 result rounded
    once (float32 accumulation): error <= 1 ulp of the dtype at each value's magnitude."""
    x, weight = _inputs(2, 8, 13, 9, 7, 4, dtype=dtype)
    got = _fwd_bwd(lambda a, b: idynamic_dwconv(a, b, impl=impl), x, weight)
    x32 = x.detach().float().requires_grad_()
    w32 = weight.detach().float().requires_grad_()
    ref = _fwd_bwd(lambda a, b: idynamic_dwconv(a, b, impl='torch'), x32, w32)
    for name, g, r in zip(('y', 'grad_x', 'grad_weight'), got, ref):
        assert g.dtype == dtype, name
        err = (g.float() - r).abs()
        bound = ulp * r.abs() + 1e-3
        assert bool((err <= bound).all()), f'{name}: max error {err.max().item():.3g}'


def test_idynamic_autocast_cpu_bf16():
    x, weight = _inputs(2, 8, 9, 7, 7, 4, dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = idynamic_dwconv(x, weight)
    assert y.dtype == torch.bfloat16
    y.float().square().mean().backward()
    assert x.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32
    ref = idynamic_dwconv_reference(x.detach(), weight.detach())
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=5e-2)


def test_idynamic_mixed_dtypes_promote():
    x = torch.randn(1, 4, 5, 5)
    weight = torch.randn(1, 2, 3, 3, 5, 5, dtype=torch.float64)
    y = idynamic_dwconv(x, weight)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, idynamic_dwconv_reference(x.double(), weight))


def test_idynamic_noncontiguous_inputs():
    x = torch.randn(2, 5, 8, 4, dtype=torch.float64).transpose(1, 3)  # (2, 4, 8, 5)
    weight = torch.randn(2, 2, 3, 3, 5, 8, dtype=torch.float64).transpose(-1, -2)
    torch.testing.assert_close(idynamic_dwconv(x, weight), idynamic_dwconv_reference(x, weight))


class _SizeLog(TorchDispatchMode):
    """Records the element count of every tensor an ATen op returns."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out, ):
            if isinstance(t, torch.Tensor):
                self.sizes.append(t.numel())
        return out


@pytest.mark.parametrize('impl', ['torch', 'cpp', 'unfold'])
def test_idynamic_memory_light(impl):
    """Only x and weight are saved, and no op creates anything larger than the inputs; the
    unfold reference is the control (it must fail both checks)."""
    b, c, h, w, k, g = 2, 8, 9, 7, 7, 2
    x, weight = _inputs(b, c, h, w, k, g, dtype=torch.float32)
    patches = b * c * k * k * h * w
    saved = []
    with saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        with _SizeLog() as log:
            y = idynamic_dwconv(x, weight, impl=impl)
    with _SizeLog() as log_bwd:
        y.backward(torch.ones_like(y))
    largest = max(log.sizes + log_bwd.sizes)
    if impl != 'unfold':
        assert sorted(saved) == sorted([x.numel(), weight.numel()])
        assert largest <= weight.numel() < patches
    else:
        assert max(saved) >= patches and largest >= patches


@pytest.mark.filterwarnings('ignore:`torch.jit.trace.*` is deprecated:FutureWarning')
def test_idynamic_jit_trace():

    class Mixer(torch.nn.Module):

        def forward(self, x, weight):
            return idynamic_dwconv(x, weight)

    x, weight = _inputs(1, 4, 6, 5, 3, 2, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('error', torch.jit.TracerWarning)
        traced = torch.jit.trace(Mixer(), (x, weight), check_trace=False)
    assert 'prim::PythonOp' in [node.kind() for node in traced.graph.nodes()]
    torch.testing.assert_close(traced(x, weight), idynamic_dwconv_reference(x, weight))


@pytest.mark.parametrize(
    'xs,ws',
    [
        ((2, 8, 5, 5), (2, 3, 3, 3, 5, 5)),  # 3 groups do not divide 8 channels
        ((2, 8, 5, 5), (2, 4, 3, 3, 5, 6)),  # map size mismatch
        ((2, 8, 5, 5), (2, 4, 4, 4, 5, 5)),  # even kernel
        ((2, 8, 5, 5), (2, 4, 3, 5, 5, 5)),  # non-square kernel
        ((2, 8, 5, 5), (1, 4, 3, 3, 5, 5)),  # batch mismatch
        ((8, 5, 5), (2, 4, 3, 3, 5, 5)),  # x not 4-d
        ((2, 8, 5, 5), (2, 4, 9, 5, 5)),  # weight not 6-d
    ])
def test_idynamic_bad_shapes(xs, ws):
    with pytest.raises(ValueError) as info:
        idynamic_dwconv(torch.randn(xs), torch.randn(ws))
    assert '\n' not in str(info.value)
    with pytest.raises(ValueError):
        idynamic_dwconv_reference(torch.randn(xs), torch.randn(ws))


def test_bad_impl_names():
    x, weight = torch.randn(1, 4, 5, 5), torch.randn(1, 2, 3, 3, 5, 5)
    with pytest.raises(ValueError):
        idynamic_dwconv(x, weight, impl='nope')
    with pytest.raises(ValueError):
        dynamic_dwconv(x, torch.randn(1, 4, 3, 3), impl='nope')
    if not torch.cuda.is_available() and os.environ.get('TRITON_INTERPRET') != '1':
        with pytest.raises(ValueError):
            idynamic_dwconv(x, weight, impl='triton')


def test_available_impls():
    impls = available_impls()
    assert {'cpp', 'torch', 'unfold'} <= set(impls['idynamic_dwconv'])
    assert set(impls['dynamic_dwconv']) == {'folded', 'folded_cl', 'loop', 'unfold'}


@pytest.mark.parametrize('impl', ['auto', 'folded', 'folded_cl', 'loop', 'unfold'])
@pytest.mark.parametrize('with_bias', [False, True])
@pytest.mark.parametrize('shape', [(2, 6, 13, 9, 7), (1, 4, 5, 5, 3)], ids=str)
def test_dynamic_dwconv_matches_unfold(impl, with_bias, shape):
    b, c, h, w, k = shape
    x = torch.randn(b, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(b, c, k, k, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(c, dtype=torch.float64, requires_grad=True) if with_bias else None
    inputs = (x, weight) + ((bias, ) if with_bias else ())

    def run(fn):
        y = fn(x, weight, bias)
        grads = torch.autograd.grad(y, inputs, torch.linspace(-1, 1, y.numel()).view_as(y))
        return (y, ) + grads

    for g, r in zip(run(lambda *a: dynamic_dwconv(*a, impl=impl)), run(dynamic_dwconv_reference)):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_dynamic_dwconv_gradcheck():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dynamic_dwconv, (x, weight, bias))


@pytest.mark.parametrize('xs,ws,bs', [
    ((2, 4, 5, 5), (2, 4, 4, 4), None),
    ((2, 4, 5, 5), (1, 4, 3, 3), None),
    ((2, 4, 5, 5), (2, 4, 3, 3), (3, )),
    ((2, 4, 5, 5), (2, 4, 9), None),
])
def test_dynamic_dwconv_bad_shapes(xs, ws, bs):
    with pytest.raises(ValueError) as info:
        dynamic_dwconv(torch.randn(xs), torch.randn(ws), None if bs is None else torch.randn(bs))
    assert '\n' not in str(info.value)


_TRITON_CHECK = textwrap.dedent('''
    import json, torch
    from backbones.ops import idynamic_dwconv, idynamic_dwconv_reference
    torch.manual_seed(0)
    worst = 0.0
    for (b, c, h, w, k, g), dtype in [((2, 8, 13, 9, 3, 4), torch.float64),
                                      ((1, 6, 7, 5, 7, 1), torch.float64),
                                      ((2, 6, 6, 6, 7, 6), torch.float64),
                                      ((1, 4, 3, 2, 7, 2), torch.float64),
                                      ((2, 8, 9, 7, 5, 2), torch.float32)]:
        x = torch.randn(b, c, h, w, dtype=dtype, requires_grad=True)
        wt = torch.randn(b, g, k, k, h, w, dtype=dtype, requires_grad=True)
        gy = torch.randn(b, c, h, w, dtype=dtype)
        y = idynamic_dwconv(x, wt, impl='triton')
        assert type(y.grad_fn).__name__ == 'IDynamicDWConvFunctionBackward'
        got = (y, ) + torch.autograd.grad(y, (x, wt), gy)
        yr = idynamic_dwconv_reference(x, wt)
        ref = (yr, ) + torch.autograd.grad(yr, (x, wt), gy)
        for a, r in zip(got, ref):
            err = ((a - r).abs().max() / (1 + r.abs().max())).item()
            worst = max(worst, err / (1e-12 if dtype == torch.float64 else 1e-5))
    print(json.dumps({'worst_in_tolerances': worst}))
''')


@pytest.mark.skipif(importlib.util.find_spec('triton') is None, reason='triton is not installed')
def test_triton_kernels_in_interpreter():
    """Forward, grad-input and grad-weight Triton kernels, run by Triton's CPU interpreter."""
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=ROOT)
    env.pop('DEMYSTIFY_IDYNAMIC_IMPL', None)
    proc = subprocess.run([sys.executable, '-c', _TRITON_CHECK],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    worst = json.loads(proc.stdout.strip().splitlines()[-1])['worst_in_tolerances']
    assert worst <= 1.0, worst


def test_importing_ops_does_not_import_triton():
    # a bare parent package, so that only backbones.ops itself is imported (the full package
    # pulls in mmengine and torch._dynamo, which import triton on their own)
    code = textwrap.dedent(f'''
        import sys, types
        parent = types.ModuleType('backbones')
        parent.__path__ = [{os.path.join(ROOT, 'backbones')!r}]
        sys.modules['backbones'] = parent
        import backbones.ops
        assert 'triton' not in sys.modules, 'triton was imported'
        assert not any(m.startswith(('mmcv', 'mmengine')) for m in sys.modules), 'mm* imported'
    ''')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
