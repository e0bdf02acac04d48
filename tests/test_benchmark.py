"""tools/benchmark.py on tiny shapes: the JSON the leaderboard and the README read, measured in
one run (this checks the plumbing; the figures themselves are in the README)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = str(ROOT / 'tools' / 'benchmark.py')


def bench(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, TOOL, *args, '--json', '--threads', '1', '--repeats', '2', '--warmup', '1'
    ],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_ops_json_has_the_ratios_of_the_targets():
    rep = bench('--ops', '--batch', '1', '--channels', '8', '--height', '9', '--width', '11',
                '--groups', '2')
    for key in ('idynamic_vs_unfold_speedup', 'idynamic_vs_unfold_memory_ratio',
                'idynamic_vs_dwconv_time_ratio', 'ddwconv_vs_dwconv_time_ratio'):
        assert isinstance(rep[key], float) and rep[key] > 0, (key, rep)
    assert not rep['errors']
    assert rep['time_ms']['idynamic'] > 0 and rep['batch_size'] == 1 and rep['threads'] == 1


def test_models_json_records(tmp_path):
    out = tmp_path / 'bench.json'
    records = bench('--models', '--names', 'dwconv_t', '--modes', 'inference', '--batch', '1',
                    '--img-size', '64', '--out', str(out))
    assert [(r['model'], r['mode']) for r in records] == [('dwconv_t', 'inference')]
    assert records[0]['images_per_s'] > 0 and records[0]['latency_ms'] > 0
    assert json.loads(out.read_text()) == records
