"""tools/benchmark.py on tiny shapes: the JSON the leaderboard and the README read, measured in
one run (this checks the plumbing; the figures themselves are in the README)."""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from harness.benchmark import model_ratios
from harness.benchmark.tasks import image_hw, inference_pipeline
from harness.errors import tool_main
from harness.leaderboard import benchmark_record, build_leaderboard, load_benchmarks
from harness.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
TOOL = str(ROOT / 'tools' / 'benchmark.py')
FAST = ('--threads', '1', '--repeats', '1', '--warmup', '0', '--fork-server')


def bench(*args: str,
          timing=('--threads', '1', '--repeats', '2', '--warmup', '1', '--fork-server')) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, TOOL, *args, '--json', *timing],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_ops_json_has_the_ratios_of_the_targets():
    # fresh interpreters, the default (the other tests use the fork server)
    tiny = '--batch 1 --channels 8 --height 9 --width 11 --groups 2'.split()
    rep = bench('--ops', *tiny, timing=('--threads', '1', '--repeats', '2', '--warmup', '1'))
    for key in ('idynamic_vs_unfold_speedup', 'idynamic_vs_unfold_memory_ratio',
                'idynamic_vs_dwconv_time_ratio', 'ddwconv_vs_dwconv_time_ratio',
                'idynamic_mixer_vs_dwconv_time_ratio'):
        assert isinstance(rep[key], float) and rep[key] > 0, (key, rep)
    assert not rep['errors']
    assert rep['time_ms']['idynamic'] > 0 and rep['batch_size'] == 1 and rep['threads'] == 1
    # 'auto' is the compiled kernels here; the PyTorch-only paths are measured beside them
    assert rep['idynamic_impl'] == 'cpp'
    assert rep['time_ms']['idynamic_torch'] > 0 and rep['time_ms']['idynamic_mixer_fused'] > 0


def test_models_json_records(tmp_path):
    out = tmp_path / 'bench.json'
    rep = bench('--models', '--names', 'dwconv_t', '--modes', 'inference', '--batch', '1',
                '--img-size', '64', '--out', str(out))
    records = rep['records']
    assert [(r['model'], r['mode']) for r in records] == [('dwconv_t', 'inference')]
    assert records[0]['images_per_s'] > 0 and records[0]['latency_ms'] > 0
    assert json.loads(out.read_text())['records'] == records
    # what --out wrote is what the leaderboard reads from work_dirs/benchmark
    work_dirs = tmp_path / 'work_dirs'
    (work_dirs / 'benchmark').mkdir(parents=True)
    out.rename(work_dirs / 'benchmark' / 'bench.json')
    warnings = []
    found = load_benchmarks(work_dirs, warnings)
    assert [(b.model, b.images_per_s, b.task)
            for b in found] == [('dwconv_t', records[0]['images_per_s'], None)] and not warnings


def test_models_json_has_the_ratios_of_one_run():
    # 224: Swin's last stage needs a 7x7 map (its window)
    rep = bench(
        '--models', '--names', 'swin_t', 'dwconv_t', 'idynamic_t', '--batch', '1', timing=FAST)
    assert not rep['errors']
    ips = {(r['model'], r['mode']): r['images_per_s'] for r in rep['records']}
    assert len(ips) == 6
    for key, (model, mode) in {
            'idynamic_t_vs_swin_t_infer': ('idynamic_t', 'inference'),
            'idynamic_t_vs_swin_t_train': ('idynamic_t', 'train'),
            'dwconv_t_vs_swin_t_infer': ('dwconv_t', 'inference'),
    }.items():
        assert rep[key] == pytest.approx(ips[(model, mode)] / ips[('swin_t', mode)]), key


def test_model_ratios_need_both_sides():
    rec = [
        benchmark_record('swin_t', 'inference', 8, 'cpu', 10.0),
        benchmark_record('idynamic_t', 'inference', 8, 'cpu', 12.5),
        benchmark_record('idynamic_t', 'train', 8, 'cpu', 3.0),
    ]
    assert model_ratios(rec) == {'idynamic_t_vs_swin_t_infer': 1.25}


def test_dense_json_has_the_ratio_over_both_sizes():
    rep = bench(
        '--dense', '--sizes', '24x40', '16x64', '--channels', '8', '--groups', '2', timing=FAST)
    assert not rep['errors'] and rep['ratio_over_sizes'] == 'max'
    assert [s['map_hw'] for s in rep['sizes']] == [[6, 10], [4, 16]]
    per_size = [s['idynamic_vs_dwconv_time_ratio'] for s in rep['sizes']]
    assert rep['idynamic_vs_dwconv_dense_time_ratio'] == max(per_size) > 0
    assert rep['idynamic_mixer_vs_dwconv_dense_time_ratio'] == max(
        s['idynamic_mixer_vs_dwconv_time_ratio'] for s in rep['sizes'])


def test_dense_default_sizes_are_the_dense_tasks_table_inputs():
    from harness.benchmark import dense_sizes
    assert dense_sizes() == [(800, 1280), (512, 2048)]


def test_task_images_follow_the_test_pipelines():
    from mmengine.config import Config

    from harness.configgen import model_config
    sizes = {}
    for task in TASKS:
        cfg = Config.fromfile(str(model_config('dwconv_t', TASKS[task].table_setting.key)))
        pipeline = inference_pipeline(cfg)
        assert not any('Load' in t['type'] for t in pipeline)
        sizes[task] = image_hw(task, pipeline)
    assert sizes == {'imagenet': (224, 224), 'coco': (800, 1333), 'ade20k': (512, 2048)}


def test_tasks_json_records_and_the_leaderboard_fps_column(tmp_path):
    work_dirs = tmp_path / 'work_dirs'
    out = work_dirs / 'benchmark' / 'tasks.json'
    rep = bench(
        '--tasks',
        '--names',
        'dwconv_t',
        '--task-names',
        'imagenet',
        '--scale',
        '0.25',
        '--out',
        str(out),
        timing=FAST)
    assert not rep['errors']
    (rec, ) = rep['records']
    assert (rec['model'], rec['task'], rec['mode'], rec['input_hw']) == ('dwconv_t', 'imagenet',
                                                                         'inference', [56, 56])
    assert rec['images_per_s'] > 0
    board = build_leaderboard(work_dirs)
    (section, ) = board.sections
    keys = [c.key for c in section.columns]
    assert 'imagenet:fps' in keys and 'coco:fps' not in keys
    (row, ) = [r for r in section.main if r.model == 'dwconv_t']
    assert row.cells[keys.index('imagenet:fps')].text().startswith('CPU ')
    assert row.throughput == ''  # the backbone alone was not measured


@pytest.mark.slow
def test_dense_task_models_run_at_a_small_scale():
    rep = bench(
        '--tasks',
        '--names',
        'dwconv_t',
        '--task-names',
        'coco',
        'ade20k',
        '--scale',
        '0.125',
        '--cfg-options',
        'model.test_cfg.rpn.nms_pre=50',
        'model.test_cfg.rpn.max_per_img=10',
        timing=FAST)
    assert not rep['errors'], rep['errors']
    assert {
        r['task']: r['input_hw']
        for r in rep['records']
    } == {
        'coco': [100, 167],
        'ade20k': [64, 256]
    }


if str(ROOT / 'tools') not in sys.path:  # for the tool's `import _bootstrap`
    sys.path.append(str(ROOT / 'tools'))
#: ``tools/benchmark.py``'s globals, run in this process (its input checks need no subprocess)
TOOL_GLOBALS = runpy.run_path(TOOL, run_name='_tools_benchmark')


@pytest.mark.parametrize('argv,message', [
    (['--models', '--batch', '0'], '--batch must be >= 1'),
    (['--models', '--names', 'no_such_net'], "unknown model 'no_such_net'"),
    (['--ops', '--device', 'tpu'], "unknown device 'tpu'"),
    (['--tasks', '--task-names', 'mnist'], "unknown task 'mnist'"),
    (['--dense', '--sizes', '12by40'], "'12by40' is not HxW"),
    (['--ops', '--dtype', 'int8'], "unknown dtype 'int8'"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv, message, capsys):
    rc = tool_main(lambda: TOOL_GLOBALS['main'](argv), prog='benchmark.py')
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith('benchmark.py: error: '), err
    assert message in err[0]
