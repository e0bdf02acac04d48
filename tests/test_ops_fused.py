"""I-Dynamic with the kernel generator fused in, against the unfused computation."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._python_dispatch import TorchDispatchMode

from backbones.ops import FLOP_HANDLES, IDynamicFusedFunction, cpu_kernels
from backbones.ops import idynamic as idynamic_mod
from backbones.ops import idynamic_dwconv, idynamic_dwconv_fused, idynamic_dwconv_fused_reference
from backbones.ops import idynamic_fused as fused_mod
from backbones.ops import shape_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (B, C, R, H, W, K, G): odd maps, batch 1, G in {1, 4, C}, C/G up to 6 (both grad-kernel
# paths), K in {3, 5, 7}, a kernel larger than the map
SHAPES = [
    (2, 8, 3, 13, 9, 3, 4),
    (1, 8, 2, 13, 9, 7, 4),
    (2, 6, 3, 7, 5, 7, 1),
    (2, 6, 2, 9, 11, 3, 6),
    (1, 4, 1, 3, 2, 7, 2),
    (3, 12, 5, 6, 6, 5, 2),
]


def _inputs(b, c, r, h, w, k, g, dtype=torch.float64, bias=True):
    """x, hidden, gen_weight (G, K, K, R), gen_bias (G, K, K) or None."""
    x = torch.randn(b, c, h, w, dtype=dtype, requires_grad=True)
    hidden = torch.randn(b, r, h, w, dtype=dtype, requires_grad=True)
    gen_weight = torch.randn(g, k, k, r, dtype=dtype, requires_grad=True)
    gen_bias = torch.randn(g, k, k, dtype=dtype, requires_grad=True) if bias else None
    return x, hidden, gen_weight, gen_bias


def _fwd_bwd(fn, inputs):
    y = fn(*inputs)
    # exactly representable in every dtype, so all dtypes see the same grad_y
    grad_y = ((torch.arange(y.numel()) % 17 - 8) / 8).to(y.dtype).view_as(y)
    tensors = [t for t in inputs if t is not None]
    return (y, ) + torch.autograd.grad(y, tensors, grad_y)


def _fused(impl):
    return lambda *inputs: idynamic_dwconv_fused(*inputs, impl=impl)


_ref = idynamic_dwconv_fused_reference
NAMES = ('y', 'grad_x', 'grad_hidden', 'grad_gen_weight', 'grad_gen_bias')


@pytest.fixture(params=['one_tile', 'row_tiles', 'sample_tiles', 'cpp', 'cpp_row_tiles'])
def tiled_impl(request, monkeypatch) -> str:
    """The fused implementations and their tilings: in PyTorch, tiles of whole batches, of one row
    of one sample, and of a few whole samples; compiled, the default tiles (whole samples at
    these sizes) and tiles of 2 rows."""
    if request.param.startswith('cpp'):
        monkeypatch.setattr(cpu_kernels, 'TILE_ROWS', 2 if request.param == 'cpp_row_tiles' else 0)
        return 'cpp'
    sizes = {'one_tile': 1 << 30, 'row_tiles': 1, 'sample_tiles': 2 * 12 * 13 * 15}
    monkeypatch.setattr(fused_mod, '_TILE_ELEMS', sizes[request.param])
    return 'fused'


@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'x'.join(map(str, s)))
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_fused_matches_unfused(shape, dtype, tol, tiled_impl):
    inputs = _inputs(*shape, dtype=dtype)
    got = _fwd_bwd(_fused(tiled_impl), inputs)
    ref = _fwd_bwd(_ref, inputs)
    for name, g, r in zip(NAMES, got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype, name
        # relative to the magnitudes: the weight gradient sums over every position
        torch.testing.assert_close(
            g / (1 + r.abs().max()), r / (1 + r.abs().max()), rtol=tol, atol=tol, msg=name)


@pytest.mark.parametrize('impl', ['fused', 'cpp'])
def test_fused_without_bias_and_grads_of_some_inputs(impl):
    x, hidden, gen_weight, _ = _inputs(2, 8, 3, 9, 7, 5, 4)
    got = _fwd_bwd(_fused(impl), (x, hidden, gen_weight, None))
    ref = _fwd_bwd(_ref, (x, hidden, gen_weight, None))
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)
    for needed in [(x, ), (hidden, ), (gen_weight, ), (x, gen_weight)]:
        y = idynamic_dwconv_fused(x, hidden, gen_weight, None, impl=impl)
        grads = torch.autograd.grad(y, needed, torch.ones_like(y))
        y_ref = _ref(x, hidden, gen_weight, None)
        grads_ref = torch.autograd.grad(y_ref, needed, torch.ones_like(y_ref))
        for g, r in zip(grads, grads_ref):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('impl', ['fused', 'cpp'])
@pytest.mark.parametrize('shape', [(1, 4, 2, 5, 4, 3, 2), (2, 3, 2, 4, 5, 5, 1),
                                   (1, 6, 1, 3, 3, 3, 2)])
def test_fused_gradcheck(shape, impl, monkeypatch):
    b, c, r, h, w, k, g = shape
    monkeypatch.setattr(fused_mod, '_TILE_ELEMS', 2 * c * (w + k))  # two rows per tile
    monkeypatch.setattr(cpu_kernels, 'TILE_ROWS', 2)
    x, hidden, gen_weight, gen_bias = _inputs(*shape)
    assert torch.autograd.gradcheck(lambda *a: IDynamicFusedFunction.apply(*a, impl),
                                    (x, hidden, gen_weight, gen_bias))
    assert torch.autograd.gradcheck(lambda *a: IDynamicFusedFunction.apply(*a, None, impl),
                                    (x, hidden, gen_weight))


@pytest.mark.parametrize('impl', ['auto', 'fused', 'cpp', 'torch', 'unfold'])
def test_every_impl_of_the_fused_api_agrees(impl, monkeypatch):
    monkeypatch.delenv(idynamic_mod.ENV_IMPL, raising=False)
    inputs = _inputs(2, 8, 3, 9, 7, 5, 4)
    for got, ref in zip(_fwd_bwd(_fused(impl), inputs), _fwd_bwd(_ref, inputs)):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_auto_is_the_fused_function_on_cpu(monkeypatch):
    monkeypatch.delenv(idynamic_mod.ENV_IMPL, raising=False)
    x, hidden, gen_weight, gen_bias = _inputs(1, 4, 2, 5, 5, 3, 2)
    y = idynamic_dwconv_fused(x, hidden, gen_weight, gen_bias)
    assert type(y.grad_fn).__name__ == 'IDynamicFusedFunctionBackward'
    # the compiled fused kernels where they build, the PyTorch tiles where they do not
    assert idynamic_mod._resolve_impl('auto', x, fused=True) == 'cpp'
    with monkeypatch.context() as patched:
        patched.setattr(cpu_kernels, '_build', lambda: 'no compiler')
        assert idynamic_mod._resolve_impl('auto', x, fused=True) == 'fused'
    monkeypatch.setenv(idynamic_mod.ENV_IMPL, 'torch')
    y = idynamic_dwconv_fused(x, hidden, gen_weight, gen_bias)
    assert type(y.grad_fn).__name__ == 'IDynamicDWConvFunctionBackward'
    # with the kernels given there is nothing to fuse: 'fused' is the blocked torch op
    monkeypatch.setenv(idynamic_mod.ENV_IMPL, 'fused')
    weight = torch.randn(1, 2, 3, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    assert type(idynamic_dwconv(x, weight).grad_fn).__name__ == 'IDynamicDWConvFunctionBackward'
    assert type(idynamic_dwconv(x, weight,
                                impl='fused').grad_fn).__name__ == 'IDynamicDWConvFunctionBackward'


@pytest.mark.parametrize('impl', ['fused', 'cpp'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_fused_half_precision(dtype, impl):
    """Half inputs are computed in float32 and rounded once at the end."""
    inputs = _inputs(2, 8, 3, 13, 9, 7, 4, dtype=dtype)
    got = _fwd_bwd(_fused(impl), inputs)
    inputs32 = [t.detach().float().requires_grad_() for t in inputs]
    ref = _fwd_bwd(_fused(impl), inputs32)
    ulp = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-11
    for g, r in zip(got, ref):
        assert g.dtype == dtype
        err = (g.float() - r).abs()
        assert bool((err <= ulp * r.abs() + 1e-3).all()), f'max error {err.max().item():.3g}'


def test_fused_autocast_cpu_bf16():
    x, hidden, gen_weight, gen_bias = _inputs(2, 8, 3, 9, 7, 7, 4, dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = idynamic_dwconv_fused(x, hidden, gen_weight, gen_bias)
    assert y.dtype == torch.bfloat16
    y.float().square().mean().backward()
    assert all(t.grad.dtype == torch.float32 for t in (x, hidden, gen_weight, gen_bias))
    ref = _ref(x.detach(), hidden.detach(), gen_weight.detach(), gen_bias.detach())
    torch.testing.assert_close(
        y.float() / ref.abs().max(), ref / ref.abs().max(), rtol=2e-2, atol=2e-2)


def test_fused_channels_last_inputs_and_conv_shaped_weights():
    x, hidden, gen_weight, gen_bias = _inputs(2, 8, 3, 9, 7, 3, 4)
    conv_weight = gen_weight.detach().reshape(36, 3, 1, 1)
    conv_bias = gen_bias.detach().reshape(36)
    xc = x.detach().to(memory_format=torch.channels_last)
    hc = hidden.detach().to(memory_format=torch.channels_last)
    ref = _ref(x, hidden, gen_weight, gen_bias)
    for impl in ('fused', 'cpp', 'torch', 'unfold'):
        torch.testing.assert_close(_fused(impl)(xc, hc, gen_weight, gen_bias), ref)
        y = idynamic_dwconv_fused(xc, hc, conv_weight, conv_bias, kernel_groups=4, impl=impl)
        torch.testing.assert_close(y, ref)


class _SizeLog(TorchDispatchMode):
    """Records the storage size (elements) of every tensor an ATen op returns: views of the
    buffers (strided shifts) count as the buffer they view."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out, ):
            if isinstance(t, torch.Tensor):
                self.sizes.append(t.untyped_storage().nbytes() // t.element_size())
        return out


@pytest.mark.parametrize('impl', ['fused', 'torch'])
def test_fused_never_makes_the_kernel_tensor(impl):
    """The fused op saves only its inputs and creates nothing near the size of the kernel
    tensor, forward or backward; the unfused op is the control (it makes the kernel tensor)."""
    b, c, r, h, w, k, g = 2, 8, 2, 15, 13, 7, 4
    x, hidden, gen_weight, gen_bias = _inputs(b, c, r, h, w, k, g, dtype=torch.float32)
    kernel_elems = b * g * k * k * h * w
    saved = []
    with saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        with _SizeLog() as log:
            y = _fused(impl)(x, hidden, gen_weight, gen_bias)
    with _SizeLog() as log_bwd:
        y.backward(torch.ones_like(y))
    largest = max(log.sizes + log_bwd.sizes)
    if impl == 'fused':
        assert sorted(saved) == sorted(t.numel() for t in (x, hidden, gen_weight, gen_bias))
        assert largest < kernel_elems / 4
    else:
        assert largest >= kernel_elems


def test_compiled_fused_keeps_non_finite_values_where_they_belong(monkeypatch):
    """The compiled kernels run one loop across rows when the map is finite (the terms that wrap
    around a row's edge are exact zeros then); a NaN or an infinity makes them go row by row, so
    that it reaches exactly the outputs (and input gradients) the reference gives it."""
    monkeypatch.setattr(cpu_kernels, 'TILE_ROWS', 2)
    x, hidden, gen_weight, gen_bias = (t.detach() for t in _inputs(2, 6, 2, 7, 5, 3, 2))
    x[0, 1, 3, 0], x[1, 4, 2, 4], x[1, 0, 5, 0] = float('nan'), float('inf'), -float('inf')
    grad_y = torch.randn_like(x)
    grad_y[0, 2, 1, 4], grad_y[1, 5, 6, 0] = float('nan'), float('inf')

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (x, hidden, gen_weight, gen_bias)]
        y = fn(*leaves)
        y.backward(grad_y)
        return y.detach(), leaves[0].grad

    for got, ref in zip(run(_fused('cpp')), run(_ref)):
        assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
        finite = ref.isfinite()
        torch.testing.assert_close(got[finite], ref[finite], rtol=1e-10, atol=1e-10)


def test_compiled_fused_never_makes_the_kernel_tensor():
    """What the compiled kernels allocate inside is invisible to the dispatch log above, so the
    process's peak resident memory is measured instead (VmHWM, reset before each step), with a
    T model's stage-1 mixer at batch 2 (a 39 MB kernel tensor); the unfused op with the compiled
    kernels ('cpp' given the kernel tensor) is the control."""
    from harness.benchmark.measure import peak_memory
    b, c, r, h, w, k, g = 2, 96, 24, 56, 56, 7, 32
    inputs = _inputs(b, c, r, h, w, k, g, dtype=torch.float32)
    kernel_mb = b * g * k * k * h * w * 4 / 2**20

    def step(fn):
        y = fn(*inputs)
        y.backward(torch.ones_like(y))

    def unfused(x, hidden, gen_weight, gen_bias):
        return idynamic_dwconv(x, fused_mod.generated_kernels(hidden, gen_weight, gen_bias), 'cpp')

    peaks = {}
    for name, fn in (('fused', _fused('cpp')), ('unfused', unfused)):
        step(fn)  # warm-up: thread pools, the extension
        peaks[name] = peak_memory(lambda: step(fn), 'cpu')['peak_mem_mb']
    if peaks['fused'] is None:
        pytest.skip('no peak resident memory here (/proc/self/clear_refs)')
    assert peaks['unfused'] >= kernel_mb, peaks
    # what the step makes besides (y, its gradient, grad_x, grad_hidden: 8 MB) fits in half
    assert peaks['fused'] < kernel_mb / 2, peaks


def test_fused_shape_only_and_flop_handle():
    """Shape-only mode skips the computation; the traced op's FLOPs are the K*K MACs per output
    element plus the 1x1 conv's, which the unfused trace counts as a conv."""
    from mmengine.analysis import FlopAnalyzer

    b, c, r, h, w, k, g = 2, 8, 3, 9, 7, 5, 4

    class Mixer(torch.nn.Module):

        def __init__(self, impl):
            super().__init__()
            self.gen = torch.nn.Conv2d(r, g * k * k, 1)
            self.impl = impl

        def forward(self, x, hidden):
            return idynamic_dwconv_fused(
                x, hidden, self.gen.weight, self.gen.bias, kernel_groups=g, impl=self.impl)

    x, hidden = torch.randn(b, c, h, w), torch.randn(b, r, h, w)
    counts = {}
    for impl in ('fused', 'torch'):
        analyzer = FlopAnalyzer(Mixer(impl), (x, hidden))
        analyzer.set_op_handle(**FLOP_HANDLES)
        analyzer.unsupported_ops_warnings(False)
        analyzer.tracer_warnings('none')
        with shape_only():
            counts[impl] = analyzer.total()
            assert idynamic_dwconv_fused(
                x, hidden, Mixer('fused').gen.weight, kernel_groups=g).shape == x.shape
    assert counts['fused'] == counts['torch'] == b * c * h * w * k * k + b * h * w * g * k * k * r


@pytest.mark.parametrize(
    'xs,hs,ws,bs,groups',
    [
        ((2, 8, 5, 5), (2, 3, 5, 5), (36, 3, 1, 1), None, 3),  # 3 groups do not divide 8
        ((2, 8, 5, 5), (2, 3, 5, 6), (36, 3, 1, 1), None, 4),  # map size mismatch
        ((2, 8, 5, 5), (1, 3, 5, 5), (36, 3, 1, 1), None, 4),  # batch mismatch
        ((2, 8, 5, 5), (2, 2, 5, 5), (36, 3, 1, 1), None, 4),  # hidden channels mismatch
        ((2, 8, 5, 5), (2, 3, 5, 5), (64, 3, 1, 1), None, 4),  # even kernel
        ((2, 8, 5, 5), (2, 3, 5, 5), (40, 3, 1, 1), None, 4),  # not square kernels
        ((2, 8, 5, 5), (2, 3, 5, 5), (36, 3, 3, 3), None, 4),  # not a 1x1 conv
        ((2, 8, 5, 5), (2, 3, 5, 5), (36, 3, 1, 1), (35, ), 4),  # bias size
        ((8, 5, 5), (2, 3, 5, 5), (36, 3, 1, 1), None, 4),  # x not 4-d
        ((2, 8, 5, 5), (2, 3, 5, 5), (36, 3, 1, 1), None, None),  # groups unknown
    ])
def test_fused_bad_shapes(xs, hs, ws, bs, groups):
    bias = None if bs is None else torch.randn(bs)
    with pytest.raises(ValueError) as info:
        idynamic_dwconv_fused(
            torch.randn(xs), torch.randn(hs), torch.randn(ws), bias, kernel_groups=groups)
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('tile_elems', [1, 500, 3000, 1 << 16])
@pytest.mark.parametrize('b,h,k', [(1, 56, 7), (2, 13, 3), (3, 7, 7), (1, 3, 7), (2, 29, 5)])
def test_tiles_cover_the_map_and_concurrent_tiles_write_disjoint_rows(b, h, k, tile_elems,
                                                                      monkeypatch):
    """Every (sample, row) is in exactly one tile, and tiles of one phase (run concurrently)
    write disjoint rows of the padded input gradient (their rows plus K - 1 below)."""
    monkeypatch.setattr(fused_mod, '_TILE_ELEMS', tile_elems)
    tiles = fused_mod._tiles(b, h, 100, k - 1)
    covered = sorted(
        (s, row) for s0, s1, r0, r1 in tiles for s in range(s0, s1) for row in range(r0, r1))
    assert covered == [(s, row) for s in range(b) for row in range(h)]
    phases = fused_mod._gx_safe_phases(tiles, k - 1)
    assert sorted(t for phase in phases for t in phase) == sorted(tiles)
    for phase in phases:
        written = [(s, row) for s0, s1, r0, r1 in phase for s in range(s0, s1)
                   for row in range(r0, r1 + k - 1)]
        assert len(written) == len(set(written))


def test_workers_keep_the_callers_modes_and_thread_counts():
    """Tiles run on single-threaded workers, in the caller's grad / inference mode (in-place
    updates of inference tensors would fail outside it); the caller keeps its thread count."""
    from backbones.ops import tile_pool
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = tile_pool.run_tiles(
            lambda t:
            (torch.get_num_threads(), torch.is_grad_enabled(), torch.is_inference_mode_enabled()),
            [[0, 1, 2]], torch.device('cpu'))
        assert seen == [(1, True, False)] * 3 and torch.get_num_threads() == 2
        with torch.inference_mode():
            seen = tile_pool.run_tiles(lambda t: torch.is_inference_mode_enabled(), [[0, 1]],
                                       torch.device('cpu'))
            assert seen == [True, True]
            inputs = _inputs(2, 8, 3, 13, 9, 7, 4, dtype=torch.float32, bias=True)
            inputs = [t.detach() for t in inputs]
            y = idynamic_dwconv_fused(*inputs)
        torch.testing.assert_close(y, _ref(*inputs))
        with torch.no_grad():
            assert tile_pool.run_tiles(lambda t: torch.is_grad_enabled(), [[0, 1]],
                                       torch.device('cpu')) == [False, False]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_fused_bad_impl_name():
    with pytest.raises(ValueError):
        idynamic_dwconv_fused(
            torch.randn(1, 4, 5, 5),
            torch.randn(1, 2, 5, 5),
            torch.randn(18, 2, 1, 1),
            kernel_groups=2,
            impl='nope')


_TRITON_CHECK = textwrap.dedent('''
    import json, torch
    from backbones.ops import idynamic_dwconv_fused, idynamic_dwconv_fused_reference
    torch.manual_seed(0)
    worst = 0.0
    for (b, c, r, h, w, k, g), dtype in [((2, 8, 3, 9, 7, 5, 4), torch.float64),
                                         ((1, 6, 2, 7, 5, 7, 2), torch.float32)]:
        x = torch.randn(b, c, h, w, dtype=dtype, requires_grad=True)
        hid = torch.randn(b, r, h, w, dtype=dtype, requires_grad=True)
        wt = torch.randn(g, k, k, r, dtype=dtype, requires_grad=True)
        bias = torch.randn(g, k, k, dtype=dtype, requires_grad=True)
        gy = torch.randn(b, c, h, w, dtype=dtype)
        y = idynamic_dwconv_fused(x, hid, wt, bias, impl='triton')
        got = (y, ) + torch.autograd.grad(y, (x, hid, wt, bias), gy)
        yr = idynamic_dwconv_fused_reference(x, hid, wt, bias)
        ref = (yr, ) + torch.autograd.grad(yr, (x, hid, wt, bias), gy)
        for a, r in zip(got, ref):
            err = ((a - r).abs().max() / (1 + r.abs().max())).item()
            worst = max(worst, err / (1e-12 if dtype == torch.float64 else 1e-5))
    print(json.dumps({'worst_in_tolerances': worst}))
''')


@pytest.mark.skipif(importlib.util.find_spec('triton') is None, reason='triton is not installed')
def test_fused_api_with_triton_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=ROOT)
    env.pop(idynamic_mod.ENV_IMPL, None)
    proc = subprocess.run([sys.executable, '-c', _TRITON_CHECK],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    worst = json.loads(proc.stdout.strip().splitlines()[-1])['worst_in_tolerances']
    assert worst <= 1.0, worst


def test_mixer_state_dict_and_every_impl(monkeypatch):
    """The mixer keeps its parameter names and shapes (checkpoints, converters), runs the fused
    op by default, and every impl gives the unfused result, also on a channels-last input."""
    from backbones.mixers import IDynamicDWConv
    monkeypatch.delenv(idynamic_mod.ENV_IMPL, raising=False)
    torch.manual_seed(0)
    mixer = IDynamicDWConv(16, 16, 7, kernel_groups=4).double().eval()
    assert {
        k: tuple(v.shape)
        for k, v in mixer.state_dict().items()
    } == {
        'reduce.conv.weight': (4, 16, 1, 1),
        'reduce.conv.bias': (4, ),
        'reduce.bn.weight': (4, ),
        'reduce.bn.bias': (4, ),
        'reduce.bn.running_mean': (4, ),
        'reduce.bn.running_var': (4, ),
        'reduce.bn.num_batches_tracked': (),
        'kernel_gen.weight': (196, 4, 1, 1),
        'kernel_gen.bias': (196, ),
    }
    x = torch.randn(2, 16, 9, 12, dtype=torch.float64).to(memory_format=torch.channels_last)
    kernels = mixer.kernel_gen(mixer.reduce(x)).contiguous().view(2, 4, 7, 7, 9, 12)
    ref = idynamic_mod.idynamic_dwconv_reference(x.contiguous(), kernels)
    y = mixer(x)
    assert type(y.grad_fn).__name__ == 'IDynamicFusedFunctionBackward'
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    for impl in ('fused', 'torch', 'unfold'):
        mixer.impl = impl
        torch.testing.assert_close(mixer(x), ref, rtol=1e-10, atol=1e-10)
