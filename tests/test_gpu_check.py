"""tools/gpu_check.sh --dry-run: the GPU check starts and passes on the CPU (toy sizes, no CUDA,
mmdet/mmseg made absent as on the GPU machine; with the .whl/ wheels when they are there)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_prints_one_passing_json_line():
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    cmd = ['bash', str(ROOT / 'tools' / 'gpu_check.sh'), '--dry-run', '--models', 'swin_t']
    proc = subprocess.run(
        cmd + ['idynamic_t'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 1, proc.stderr[-3000:]
    report = json.loads(lines[0])
    assert report['dry_run'] and report['passed'] and not report['errors'], report
    assert report['ops']['passed'] and max(report['ops']['worst'].values()) <= 1
    assert any(k.startswith('IDynamicDWConv/fused/') for k in report['ops']['worst'])
    assert report['cupy']['kernel_matches_reference']
    assert set(report['amp']['models']) == {'swin_t', 'idynamic_t'}
    records = report['throughput']['inference/float32']['records']
    assert {r['model'] for r in records} == {'swin_t', 'idynamic_t'}
    assert 'idynamic_t_vs_swin_t_infer' in report['throughput']['inference/bfloat16']
