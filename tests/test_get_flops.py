"""tools/get_flops.py: counts with mmengine's analyzer, stdout stays machine-readable."""
import importlib.util
import json
import os.path as osp

import pytest

from backbones.zoo import get_model_info
from harness.errors import tool_main

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def get_flops(request):
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    spec = importlib.util.spec_from_file_location('_get_flops',
                                                  osp.join(ROOT, 'tools', 'get_flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    request.addfinalizer(lambda: sys.path.remove(osp.join(ROOT, 'tools')))
    return module


def test_json_records_are_the_only_stdout_and_match_the_paper(get_flops, capsys):
    assert get_flops.main(['--models', 'dwconv_t', 'idynamic_t', '--tasks', 'imagenet',
                           '--json']) == 0
    records = json.loads(capsys.readouterr().out)  # no log line may leak into stdout
    by_model = {r['model']: r for r in records}
    assert set(by_model) == {'dwconv_t', 'idynamic_t'}
    dw = by_model['dwconv_t']
    paper = get_model_info('dwconv_t').paper['imagenet']
    assert dw['task'] == 'imagenet' and dw['setting'] == 'imagenet' and abs(
        dw['params_m'] - paper['params_m']) <= 0.5
    assert abs(dw['gflops'] - paper['gflops']) / paper['gflops'] <= 0.03
    # I-Dynamic with the official code's G = 32 counts 4.39 G, above the table's 3.95 G
    assert by_model['idynamic_t']['gflops'] == pytest.approx(4.39, abs=0.01)


def test_bad_input_is_one_error_line(get_flops, capsys):
    assert tool_main(lambda: get_flops.main(['configs/imagenet/nope_in1k.py'])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'nope_in1k.py' in err[0]
