"""The backbone contract (harness/contract/, tools/check_backbone.py): a backbone written in
this file, outside the repository's packages, goes the whole way (registered, configs generated,
every check passes); broken ones are caught with the right message; bad input is one line."""
import importlib.util
import json
import sys
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.model import BaseModule, ModuleList
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm

from backbones import zoo
from backbones.registry import MODELS
from contrib.lkconv import LKConvNet  # before any test patches the zoo: it registers lkconv_t
from harness.configgen import model_config, render_config, write_configs
from harness.contract import (CHECKS, BackboneChecker, check_backbone, default_settings,
                              register_submission)
from harness.errors import ToolError, tool_main
from harness.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
#: small models: one thread is as fast on an idle machine and far faster on a busy one
pytestmark = pytest.mark.usefixtures('one_thread')
#: toy datasets just big enough for one batch of each task's toy config
TOY_SIZES = {
    'imagenet': dict(num_classes=4, train_per_class=4, val_per_class=1, img_size=32),
    'coco': dict(train_images=2, val_images=1),
    'ade20k': dict(train_images=4, val_images=1, min_size=64, max_size=112),
}


class _Stage(BaseModule):
    """A strided conv (the down-sampling) and a residual 3x3 conv."""

    def __init__(self, in_channels: int, channels: int, stride: int, drop_path: float,
                 norm_cfg: dict) -> None:
        super().__init__()
        self.down = ConvModule(in_channels, channels, stride, stride=stride, norm_cfg=norm_cfg)
        self.conv = ConvModule(channels, channels, 3, padding=1, norm_cfg=norm_cfg)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return x + self.drop_path(self.conv(x))


@MODELS.register_module(force=True)
class TinyConvNet(BaseModule):
    """A plain four-stage conv net that follows the backbone contract by hand (no DWNet)."""
    widths = [8, 16, 32, 64]

    def __init__(self,
                 arch: str = 'tiny',
                 in_channels: int = 3,
                 out_indices=(3, ),
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        assert arch == 'tiny'
        self.num_features = list(self.widths)
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        rates = torch.linspace(0, drop_path_rate, 4).tolist()
        channels = [in_channels] + self.widths
        self.stages = ModuleList(
            _Stage(channels[i], channels[i + 1], 4 if i == 0 else 2, rates[i], norm_cfg)
            for i in range(4))
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, self.widths[i])[1])
        self._freeze_stages()

    def forward(self, x: torch.Tensor) -> tuple:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            modules = [self.stages[i]
                       ] + ([getattr(self, f'norm{i}')] if i in self.out_indices else [])
            for m in modules:
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True) -> 'TinyConvNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


# ------------------------------------------------------------------ broken on purpose


@MODELS.register_module(force=True)
class WrongChannelsNet(TinyConvNet):
    """Declares 128 channels for its last stage, which has 64."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_features = [8, 16, 32, 128]


@MODELS.register_module(force=True)
class UnusedParamNet(TinyConvNet):
    """Owns a layer that forward never calls."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unused = nn.Conv2d(8, 8, 1)


@MODELS.register_module(force=True)
class IgnoresFrozenStagesNet(TinyConvNet):

    def _freeze_stages(self) -> None:
        pass


@MODELS.register_module(force=True)
class FrozenButTrainingNet(TinyConvNet):
    """Freezes the parameters but leaves the BatchNorm statistics of frozen stages running."""

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            for p in self.stages[i].parameters():
                p.requires_grad = False
        for i in self.out_indices:
            if i <= self.frozen_stages:
                for p in getattr(self, f'norm{i}').parameters():
                    p.requires_grad = False


@MODELS.register_module(force=True)
class IgnoresNormEvalNet(TinyConvNet):

    def train(self, mode: bool = True) -> 'IgnoresNormEvalNet':
        BaseModule.train(self, mode)
        self._freeze_stages()
        return self


@MODELS.register_module(force=True)
class DenseExtrasNet(TinyConvNet):
    """Adds a layer in dense tasks that the ImageNet checkpoint cannot fill."""

    def __init__(self, out_indices=(3, ), **kwargs) -> None:
        super().__init__(out_indices=out_indices, **kwargs)
        if len(self.out_indices) > 1:
            self.fuse = nn.Conv2d(64, 64, 1)

    def forward(self, x: torch.Tensor) -> tuple:
        outs = super().forward(x)
        return outs[:-1] + (self.fuse(outs[-1]), ) if hasattr(self, 'fuse') else outs


@MMDET_MODELS.register_module(force=True)
class ToolboxOnlyNet(TinyConvNet):
    """Registered in mmdet's registry, not in mmengine's root one."""


@MODELS.register_module(force=True)
class NoNumFeaturesNet(TinyConvNet):

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        del self.num_features


@MODELS.register_module(force=True)
class TensorOutputNet(TinyConvNet):
    """Returns the last map itself, not a tuple."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[-1]


@MODELS.register_module(force=True)
class LastStageOnlyNet(TinyConvNet):
    """Ignores out_indices: one output, whatever the config asks for."""

    def __init__(self, out_indices=(3, ), **kwargs) -> None:
        super().__init__(out_indices=(3, ), **kwargs)


@MODELS.register_module(force=True)
class WrongStridesNet(TinyConvNet):
    """Its stem has stride 2, not 4: every map is twice as large as the necks expect."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        norm_cfg = dict(type='BN')
        self.stages[0].down = ConvModule(3, 8, 2, stride=2, norm_cfg=norm_cfg)


@MODELS.register_module(force=True)
class MultipleOf32Net(TinyConvNet):
    """Refuses inputs whose sides are not multiples of 32."""

    def forward(self, x: torch.Tensor) -> tuple:
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0, 'sides must be multiples of 32'
        return super().forward(x)


@MODELS.register_module(force=True)
class CropsTo64Net(TinyConvNet):
    """Crops the input to multiples of 64: the maps of other sizes come out too small."""

    def forward(self, x: torch.Tensor) -> tuple:
        return super().forward(x[..., :x.shape[-2] // 64 * 64, :x.shape[-1] // 64 * 64])


@MODELS.register_module(force=True)
class TrainableOutputNormsNet(TinyConvNet):
    """Freezes the stages, but not the output norms of the frozen stages."""

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            self.stages[i].eval()
            for p in self.stages[i].parameters():
                p.requires_grad = False


@MODELS.register_module(force=True)
class FreezesEverythingNet(TinyConvNet):
    """Freezes all four stages whatever frozen_stages says."""

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            for m in (self.stages, *[getattr(self, f'norm{i}') for i in self.out_indices]):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False


class _AlwaysUpdatingBN(nn.BatchNorm2d):
    """A BatchNorm that normalises with the batch and updates its statistics in eval mode too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                            self.momentum, self.eps)


@MODELS.register_module(force=True)
class StatisticsUnderNormEvalNet(TinyConvNet):
    """Its BatchNorm layers are in eval mode under norm_eval, but still update statistics."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for m in self.modules():
            if type(m) is nn.BatchNorm2d:
                m.__class__ = _AlwaysUpdatingBN


@MODELS.register_module(force=True)
class NormEvalEvalsAllNet(TinyConvNet):
    """norm_eval=True puts the whole backbone in eval mode."""

    def train(self, mode: bool = True) -> 'NormEvalEvalsAllNet':
        super().train(mode and not self.norm_eval)
        return self


@MODELS.register_module(force=True)
class NoFrozenStagesNet(TinyConvNet):
    """Does not take frozen_stages."""

    def __init__(self, **kwargs) -> None:
        if 'frozen_stages' in kwargs:
            raise TypeError("__init__() got an unexpected keyword argument 'frozen_stages'")
        super().__init__(**kwargs)


@MODELS.register_module(force=True)
class ReinitialisesNet(TinyConvNet):
    """Initialises its stem again after init_weights() loaded the checkpoint."""

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.normal_(self.stages[0].down.conv.weight)


class _Doubles(torch.autograd.Function):
    """A custom op the FLOP counter has no handle for."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return 2 * grad


@MODELS.register_module(force=True)
class UncountedOpNet(TinyConvNet):

    def forward(self, x: torch.Tensor) -> tuple:
        return tuple(_Doubles.apply(o) for o in super().forward(x))


@MODELS.register_module(force=True)
class NoGradNet(TinyConvNet):
    """Computes its outputs without autograd: a training step cannot change it."""

    def forward(self, x: torch.Tensor) -> tuple:
        with torch.no_grad():
            return super().forward(x)


@MODELS.register_module(force=True)
class NaNNet(TinyConvNet):

    def forward(self, x: torch.Tensor) -> tuple:
        return tuple(o * float('nan') for o in super().forward(x))


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def zoo_entry(monkeypatch):
    """``register_model`` into a copy of the zoo, restored after the test."""
    monkeypatch.setattr(zoo, '_ZOO', dict(zoo._ZOO))

    def register(name: str, type_name: str) -> str:
        zoo.register_model(name, dict(type=type_name, arch='tiny', drop_path_rate=0.1))
        return name

    return register


@pytest.fixture(scope='module')
def toy_roots(toy_data) -> Dict[str, str]:
    """Toy data of every task, just big enough for one batch of each task's toy config."""
    return {task: str(toy_data(task, **sizes)) for task, sizes in TOY_SIZES.items()}


# ------------------------------------------------------------------ the whole path


@pytest.mark.slow
def test_a_backbone_from_outside_the_repository_goes_the_whole_way(tmp_path, zoo_entry, toy_roots):
    model = zoo_entry('tinyconv_t', 'TinyConvNet')
    written = write_configs(model, root=str(tmp_path))
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == [
        'ade20k/tinyconv_t_upernet.py', 'coco/tinyconv_t_cascade_maskrcnn_3x.py',
        'coco/tinyconv_t_maskrcnn.py', 'imagenet/tinyconv_t_in1k.py'
    ]

    lines = []
    checker = BackboneChecker(model, config_root=str(tmp_path), quick=True, toy_data=toy_roots)
    results = checker.run(report=lambda r: lines.append(r.line()))
    assert [r.name for r in results] == [c for c in CHECKS if c != 'toy_step'] + [
        'toy_step[imagenet]', 'toy_step[coco_maskrcnn]', 'toy_step[coco_cascade]',
        'toy_step[ade20k]'
    ]
    assert all(r.status == 'pass' for r in results), '\n'.join(lines)
    detail = {r.name: r.detail for r in results}
    assert 'with [8, 16, 32, 64] channels = num_features' in detail['outputs']
    assert 'only the output norms are new: norm0, norm1, norm2' in detail['checkpoint']
    assert 'stages.0, stages.1, norm0, norm1' in detail['frozen_stages']
    assert lines[0].startswith('PASS  build')


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize('model', ['lkconv_t', 'swin_t'])
def test_the_full_check_passes_on_the_worked_example_and_a_paper_model(model, toy_roots, tmp_path):
    """Every check as ``tools/check_backbone.py MODEL`` runs them (not --quick: the task models
    are counted in the table's settings, here afresh); a paper model's counts are those of
    docs/flops.json."""
    imports = ['contrib.lkconv'] if model == 'lkconv_t' else []
    checker = BackboneChecker(
        model, imports=imports, toy_data=toy_roots, cache_dir=str(tmp_path / 'cache'))
    lines = []
    results = checker.run(report=lambda r: lines.append(r.line()))
    toy_steps = [f'toy_step[{key}]' for key in default_settings()]
    assert [r.name for r in results] == [c for c in CHECKS if c != 'toy_step'] + toy_steps
    assert all(r.status == 'pass' for r in results), '\n'.join(lines)
    complexity = {r.name: r.detail for r in results}['complexity']
    assert 'backbone alone' not in complexity
    if model in zoo.PAPER_MODELS:
        committed = json.loads((ROOT / 'docs' / 'flops.json').read_text())
        for name, task in TASKS.items():
            key = task.table_setting.key
            record, = [r for r in committed if (r['model'], r['setting']) == (model, key)]
            assert f'{key} {record["params_m"]:.1f}M {record["gflops"]:.1f}G' in complexity


def test_stale_or_missing_configs_fail_with_the_command_that_writes_them(tmp_path, zoo_entry):
    model = zoo_entry('tinyconv_t', 'TinyConvNet')
    checker = BackboneChecker(model, config_root=str(tmp_path), imports=['contrib.lkconv'])
    result, = checker.run(['configs'])
    assert result.failed and '4 missing' in result.detail
    assert 'python tools/make_configs.py tinyconv_t --import contrib.lkconv' in result.detail
    write_configs(model, root=str(tmp_path), imports=['contrib.lkconv'])
    assert checker.run(['configs'])[0].status == 'pass'
    stale = tmp_path / 'coco' / 'tinyconv_t_maskrcnn.py'
    stale.write_text(stale.read_text().replace('drop_path_rate=0.2', 'drop_path_rate=0.1'))
    result, = checker.run(['configs'])
    assert result.failed and '1 out of date' in result.detail and str(stale) in result.detail


# ------------------------------------------------------------------ broken backbones


@pytest.mark.parametrize('type_name, check, message', [
    ('ToolboxOnlyNet', 'build', "mmpretrain MODELS cannot build 'ToolboxOnlyNet'"),
    ('ToolboxOnlyNet', 'build', "mmengine's root registry, not one toolbox's"),
    ('NoNumFeaturesNet', 'build', 'NoNumFeaturesNet declares num_features=None'),
    ('TensorOutputNet', 'outputs', 'forward returns Tensor, not a tuple of (B, C, H, W) maps'),
    ('LastStageOnlyNet', 'outputs', 'the dense-task backbone has 1 outputs; the necks need 4'),
    ('WrongChannelsNet', 'outputs', 'output 3 has 64 channels, but num_features[3] declares 128'),
    ('WrongStridesNet', 'outputs', 'output 0 is 48x64 for a 96x128 input; stride 4 gives 24x32'),
    ('MultipleOf32Net', 'input_sizes', 'fails on a 200x333 input: AssertionError: sides must be '
     'multiples of 32'),
    ('CropsTo64Net', 'input_sizes', 'output 0 is 48x80 for a 200x333 input; stride 4 gives '
     '50..50 x 83..84'),
    ('UnusedParamNet', 'gradients', '2 parameters of the classification backbone get no '
     'gradient: unused.weight, unused.bias'),
    ('IgnoresFrozenStagesNet', 'frozen_stages', 'frozen_stages=1 sets requires_grad=False on no '
     'parameter'),
    ('FrozenButTrainingNet', 'frozen_stages', 'layers of the frozen stages are in training mode'),
    ('TrainableOutputNormsNet', 'frozen_stages', 'with frozen_stages=1, output 0 still depends '
     'on trainable parameters'),
    ('FreezesEverythingNet', 'frozen_stages', 'frozen_stages=1 also froze stage 2'),
    ('NoFrozenStagesNet', 'frozen_stages', 'the backbone does not accept frozen_stages'),
    ('IgnoresNormEvalNet', 'norm_eval', 'norm_eval=True, but after train() 12 of 12 BatchNorm '
     'layers are in training mode'),
    ('StatisticsUnderNormEvalNet', 'norm_eval', 'norm_eval=True, but a training-mode forward '
     'changes the running statistics of stages.0.down.bn'),
    ('NormEvalEvalsAllNet', 'norm_eval', 'norm_eval=True puts the whole backbone in eval mode'),
    ('DenseExtrasNet', 'checkpoint', '2 keys missing from the checkpoint: fuse.weight, fuse.bias'),
    ('ReinitialisesNet', 'checkpoint', '1 keys not loaded by init_weights() (does it '
     're-initialise after loading?): stages.0.down.conv.weight'),
])
def test_a_broken_backbone_is_caught_with_the_reason(zoo_entry, type_name, check, message):
    model = zoo_entry('broken_t', type_name)
    results = check_backbone(model, [check])
    assert [(r.name, r.status) for r in results] == [(check, 'fail')]
    assert message in results[0].detail


def test_a_custom_op_without_a_flop_handle_is_caught(zoo_entry):
    model = zoo_entry('broken_t', 'UncountedOpNet')
    for quick in (True, False):  # the full count checks a cheap trace first
        result, = check_backbone(model, ['complexity'], quick=quick)
        assert result.failed, quick
        assert 'the FLOP counter has no handle for prim::PythonOp._Doubles' in result.detail


@pytest.mark.parametrize('type_name, message', [
    ('NoGradNet', 'a training step left every backbone parameter unchanged'),
    ('NaNNet', 'the loss of a toy step is nan'),
])
def test_a_toy_step_that_does_not_train_is_caught(zoo_entry, toy_roots, type_name, message):
    model = zoo_entry('broken_t', type_name)
    result, = check_backbone(model, ['toy_step'], settings=['imagenet'], toy_data=toy_roots)
    assert (result.name, result.status) == ('toy_step[imagenet]', 'fail')
    assert message in result.detail


def test_checks_that_need_a_build_are_skipped_when_it_fails(zoo_entry):
    zoo_entry('broken_t', 'TinyConvNet')
    zoo._ZOO['broken_t'].backbone['arch'] = 'huge'  # the constructor asserts
    results = BackboneChecker('broken_t').run(['build', 'outputs'])
    assert [(r.name, r.status) for r in results] == [('build', 'fail'), ('outputs', 'skip')]
    assert results[0].detail.startswith('AssertionError')


# ------------------------------------------------------------------ the example, the CLI


def test_the_worked_example_is_registered_with_up_to_date_configs():
    assert MODELS.get('LKConvNet') is LKConvNet
    assert zoo.display_name('lkconv_t') == 'LK-DW Conv.-T'
    assert zoo.get_properties('lkconv_t').dynamic_weights is False
    backbone = zoo.build_backbone('lkconv_t')
    assert {b.mixer.conv.kernel_size for s in backbone.stages for b in s.blocks} == {(13, 13)}
    for key, suffix in [('imagenet', 'imagenet/lkconv_t_in1k.py'),
                        ('coco_maskrcnn', 'coco/lkconv_t_maskrcnn.py'),
                        ('coco_cascade', 'coco/lkconv_t_cascade_maskrcnn_3x.py'),
                        ('ade20k', 'ade20k/lkconv_t_upernet.py')]:
        path = model_config('lkconv_t', key)
        assert path == Path('contrib/lkconv/configs') / suffix  # the submission's own folder
        text = (ROOT / path).read_text()
        assert text == render_config('lkconv_t', key, ['contrib.lkconv'])
        assert "_base_ = '../../../../configs/_base_/" in text
        assert "custom_imports = dict(imports=['backbones', 'contrib.lkconv']" in text


def load_tool(name: str):
    """``tools/<name>.py`` imported by path (a subprocess would spend seconds on imports)."""
    tools = str(ROOT / 'tools')
    if tools not in sys.path:
        sys.path.append(tools)  # for the tool's `import _bootstrap`; last: shadows nothing
    spec = importlib.util.spec_from_file_location(f'_tools_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool('check_backbone')


def run_tool(tool, argv, capsys):
    rc = tool_main(lambda: tool.main(argv), 'check_backbone.py')
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_prints_a_line_per_check_and_exits_1_on_a_failure(tool, zoo_entry, capsys):
    zoo_entry('tinyconv_t', 'TinyConvNet')
    rc, out, err = run_tool(
        tool, ['tinyconv_t', '--only', 'build', 'outputs', 'configs', '--skip', 'configs'], capsys)
    assert rc == 0, out + err
    assert [line.split()[:2] for line in out.splitlines()[1:3]] == [['[1/2]', 'PASS'],
                                                                    ['[2/2]', 'PASS']]
    assert '[ETA ' in out.splitlines()[1] and '[ETA ' not in out.splitlines()[2]
    assert 'all 2 checks passed' in out.splitlines()[-1]

    rc, out, err = run_tool(
        tool, ['wrong_t', '--backbone', "dict(type='WrongChannelsNet')", '--only', 'outputs'],
        capsys)
    assert rc == 1
    assert out.splitlines()[1].startswith('[1/1] FAIL  outputs')
    assert 'declares 128' in out and '1 of 1 checks FAILED (outputs)' in out


@pytest.mark.parametrize('argv, message', [
    (['no_such_model'], "unknown model 'no_such_model'"),
    (['x_t', '--backbone', "dict(type='NoSuchNet')"], "unknown backbone type 'NoSuchNet'"),
    (['x_t', '--backbone', 'dict(type=NoSuchNet)'], '--backbone is not a dict literal'),
    (['lkconv_t', '--import', 'no_such_pkg.lkconv'
      ], "cannot import 'no_such_pkg.lkconv': ModuleNotFoundError"),
    (['lkconv_t', '--import', 'nowhere/lkconv.py'], "cannot import 'nowhere/lkconv.py': no such"),
])
def test_cli_bad_input_is_one_error_line_and_exit_2(tool, zoo_entry, capsys, argv, message):
    rc, out, err = run_tool(tool, argv, capsys)
    assert rc == 2 and not out
    assert len(err.splitlines()) == 1 and err.startswith('check_backbone.py: error: ')
    assert message in err


def test_a_backbone_module_can_be_given_as_a_file(tmp_path, zoo_entry, monkeypatch, request):
    monkeypatch.setattr(sys, 'path', list(sys.path))
    request.addfinalizer(lambda: sys.modules.pop('filenet', None))
    source = tmp_path / 'filenet.py'
    source.write_text('from backbones.zoo import register_model\n'
                      "register_model('filenet_t', dict(type='TinyConvNet', arch='tiny'))\n")
    assert register_submission('filenet_t', [str(source)]) == ['filenet']
    assert zoo.get_backbone_cfg('filenet_t')['type'] == 'TinyConvNet'
    for spec in (ROOT / 'contrib' / 'lkconv', ROOT / 'contrib' / 'lkconv' / '__init__.py'):
        inside = register_submission('lkconv_t', [str(spec)])
        assert inside == ['contrib.lkconv']  # under the repository root: its dotted name
    with pytest.raises(ToolError, match='unknown model'):
        register_submission('nothing_t')


def test_make_configs_takes_a_new_backbone_and_reports_bad_input_in_one_line(
        tmp_path, zoo_entry, capsys):
    make_configs = load_tool('make_configs')
    rc = make_configs.main([
        'tiny2_t', '--backbone', "dict(type='TinyConvNet', arch='tiny')", '--import',
        'contrib.lkconv', '--settings', 'imagenet', '--root',
        str(tmp_path)
    ])
    written = tmp_path / 'imagenet' / 'tiny2_t_in1k.py'
    assert rc == 0 and capsys.readouterr().out == f'wrote {written}\n'
    assert "imports=['backbones', 'contrib.lkconv']" in written.read_text()
    assert "head=dict(in_channels=64)" in written.read_text()
    for argv, message in [(['x_t', '--import', 'no_such_pkg'], "cannot import 'no_such_pkg'"),
                          (['x_t', '--backbone',
                            "dict(type='NoSuchNet')"], "unknown backbone type 'NoSuchNet'")]:
        assert tool_main(lambda: make_configs.main(argv), 'make_configs.py') == 2
        out, err = capsys.readouterr()
        assert not out and err.startswith('make_configs.py: error: ') and message in err
        assert len(err.splitlines()) == 1
