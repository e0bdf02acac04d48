"""The task table is the one place that defines tasks, settings and metrics: a setting added
there (plus its template) reaches config generation, FLOP counting and the leaderboard."""
import json
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config

from backbones.engine import SCHEMA_VERSION
from harness import tasks
from harness.tasks import Setting

FPN_TEMPLATE = textwrap.dedent("""\
    # Semantic FPN 160k on ADE20K: a fifth setting, added by a test
    _base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
    custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
    model = dict(
        pretrained=None,
        backbone=dict(_delete_=True, type='SwinNet', arch='tiny', out_indices=(0, 1, 2, 3)),
        neck=dict(in_channels=[96, 192, 384, 768]))
    """)


@pytest.fixture
def fpn_setting(tmp_path):
    """A Semantic-FPN setting of ADE20K, with its template in a temporary ``_base_``."""
    base = tmp_path / '_base_'
    base.mkdir()
    (base / 'ade20k_fpn_160k.py').write_text(FPN_TEMPLATE)
    setting = tasks.add_setting(
        'ade20k',
        Setting(
            'ade20k_fpn',
            'fpn',
            'ade20k_fpn_160k.py',
            'Semantic FPN 160k',
            head_channels={'neck.in_channels': 'all'}))
    yield setting, base
    tasks.remove_setting('ade20k_fpn')


def test_the_table_is_consistent():
    keys = [s.key for s in tasks.settings()]
    assert len(keys) == len(set(keys))
    for task in tasks.TASKS.values():
        assert sum(m.main for m in task.metrics) == 1, task.name
        assert sum(s.in_table for s in task.settings) == 1, task.name
        assert tasks.task_of_scope(task.scope) is task
    for task, setting in tasks.iter_settings():
        path = tasks.config_path('dwconv_t', setting.key)
        assert tasks.identify(path) == ('dwconv_t', setting.key)
        assert tasks.task_of_setting(setting.key) is task
    with pytest.raises(ValueError, match='defined twice'):
        tasks.add_setting('coco', Setting('coco_cascade', 'x', 'x.py'))
    assert tasks.identify('somewhere/else.py') == ('else', None)


def test_a_fifth_setting_reaches_configs_flops_and_the_leaderboard(fpn_setting, tmp_path):
    from harness.complexity import task_complexity
    from harness.configgen import settings_for, write_configs
    from harness.leaderboard import build_leaderboard, render_markdown

    setting, base = fpn_setting
    assert 'ade20k_fpn' in settings_for('dwconv_t')
    # configs: written from the new template, the backbone's channels read off the model
    [path] = write_configs(
        'dwconv_t', root=tmp_path / 'configs', settings=['ade20k_fpn'], template_root=base)
    assert path == tmp_path / 'configs' / 'ade20k' / 'dwconv_t_fpn.py'
    assert tasks.identify(path) == ('dwconv_t', 'ade20k_fpn')
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.type == 'DWConvNet' and cfg.model.decode_head.type == 'FPNHead'
    assert cfg.model.neck.in_channels == [96, 192, 384, 768]
    assert cfg.model.backbone.drop_path_rate == 0.3  # the ADE20K rate of a T model

    # FLOPs: counted by the task's protocol (a segmentor's decode head); FPN is lighter than
    # UperNet at the same input
    fpn = task_complexity(cfg.model.to_dict(), 'ade20k', input_hw=(128, 128))
    upernet_cfg = Config.fromfile('configs/ade20k/dwconv_t_upernet.py')
    upernet = task_complexity(upernet_cfg.model.to_dict(), 'ade20k', input_hw=(128, 128))
    assert 0 < fpn.flops < upernet.flops and fpn.params < upernet.params

    # leaderboard: a record of the new setting shows under its title
    run = tmp_path / 'work_dirs' / 'ade20k' / 'dwconv_t_fpn'
    run.mkdir(parents=True)
    (run / 'result.json').write_text(
        json.dumps(
            dict(
                schema=SCHEMA_VERSION,
                model='dwconv_t',
                task='ade20k',
                template='ade20k_fpn',
                metrics=dict(miou=41.37),
                toy=False,
                params_m=round(fpn.params_m, 3),
                gflops=round(fpn.gflops, 3),
                date='2026-12-01T00:00:00+00:00')))
    text = render_markdown(build_leaderboard(tmp_path / 'work_dirs'))
    assert '| DW Conv.-T | Semantic FPN 160k |' in text and '| 41.4 |' in text


def test_metric_names_come_from_the_table():
    coco = tasks.TASKS['coco']
    assert coco.metric_names() == {
        'coco/bbox_mAP': ('ap_box', 100.),
        'coco/segm_mAP': ('ap_mask', 100.),
    }
    assert tasks.TASKS['ade20k'].metric_names(tta=True) == {'mIoU': ('miou_ms', 1.)}
    assert coco.main_metric.name == 'ap_box' and coco.table_setting.key == 'coco_cascade'


def test_unknown_setting_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown setting 'nope'"):
        tasks.config_path('dwconv_t', 'nope')
    assert Path(tasks.config_path('m', 'coco_maskrcnn', 'x')) == Path('x/coco/m_maskrcnn.py')
