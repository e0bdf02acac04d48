"""The leaderboard on records written here: values, paper references and differences, run
selection (latest / --best / --mean), --tta test runs, toy separation, broken inputs, outputs,
the plot's labels, metafiles."""
import base64
import csv
import itertools
import json
import re
import runpy
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

from backbones.engine import ResultRecord
from backbones.zoo import PAPER_MODELS, display_name, get_model_info, get_properties
from harness import leaderboard as lb
from harness.errors import tool_main
from harness.leaderboard.plot import LABEL_GID
from harness.tasks import get_setting

REPO = Path(__file__).resolve().parents[1]
MINUS = '\u2212'
TTA = ('miou_ms', )  # the fixture's ADE20K record has it: the main table shows its column

BASE = dict(schema=2, git_commit='abc123', world_size=8, toy=False, config_hash='0' * 64)
IDYN_RUNS = [  # idynamic_t on ImageNet: (seed, day, top1); seed 0 re-run on day 24
    (0, 20, 81.52), (1, 21, 82.14), (2, 22, 81.73), (0, 24, 81.60)
]
UNKNOWN = 'mynet_t'
TOY_TOP1 = 12.25


def record(model: str,
           task: str,
           template: str,
           metrics: Dict[str, float],
           day: int = 20,
           seed: int = 0,
           **extra) -> dict:
    """A result record as ``ResultRecordHook`` writes it (schema 2)."""
    fields = dict(
        BASE,
        params_m=30.5,
        gflops=4.21,
        date=f'2026-11-{day:02d}T12:00:00+00:00',
        seed=seed,
        config=f'configs/{task}/{model}_{template}.py',
        work_dir=f'work_dirs/{model}_{template}_{seed}_{day}',
        raw_metrics={
            f'raw/{k}': v / 100
            for k, v in metrics.items()
        })
    fields.update(extra)
    return ResultRecord(
        model=model, task=task, template=template, metrics=metrics, **fields).to_dict()


def paper(model: str, setting: str, quantity: str) -> float:
    """The paper's value, from the zoo's model record."""
    return get_model_info(model).paper[setting][quantity]


def cell(ours: float, paper: Optional[float], decimals: int = 1) -> str:
    """The documented cell format: ``81.6 (81.8, −0.2)``."""
    text = f'{ours:.{decimals}f}'
    if paper is None:
        return text
    diff = round(ours - paper, decimals)
    sign = '\u00b1' if diff == 0 else '+' if diff > 0 else MINUS
    return f'{text} ({paper:g}, {sign}{abs(diff):.{decimals}f})'


def full_records() -> Dict[str, dict]:
    recs = {}
    for i, (seed, day, top1) in enumerate(IDYN_RUNS):
        recs[f'idyn/run{i}/result.json'] = record(
            'idynamic_t',
            'imagenet',
            'imagenet',
            dict(top1=top1, top5=95.9, real_top1=top1 + 5.3),
            day=day,
            seed=seed,
            checkpoint=f'work_dirs/idyn/run{i}/epoch_300.pth')
    recs['swin/cascade/result.json'] = record(
        'swin_t',
        'coco',
        'coco_cascade',
        dict(ap_box=50.31, ap_mask=43.92),
        params_m=86.1,
        gflops=745.3)
    recs['swin/maskrcnn/result.json'] = record(
        'swin_t',
        'coco',
        'coco_maskrcnn',
        dict(ap_box=43.47, ap_mask=39.61),
        params_m=47.8,
        gflops=264.0)
    recs['swin_b/in22k/result.json'] = record(
        'swin_b', 'imagenet', 'imagenet_in22k_ft', dict(top1=84.93), params_m=87.8, gflops=15.44)
    recs['dwconv/ade/result.json'] = record(
        'dwconv_t', 'ade20k', 'ade20k', dict(miou=45.84, miou_ms=46.9), params_m=None, gflops=None)
    recs['mine/result.json'] = record(
        UNKNOWN, 'imagenet', 'imagenet', dict(top1=77.77), params_m=11.1, gflops=1.23)
    return recs


def toy_records() -> Dict[str, dict]:
    return {
        'toy/ddw/result.json':
        record(
            'ddwconv_t',
            'imagenet',
            'imagenet',
            dict(top1=TOY_TOP1),
            toy=True,
            params_m=1.5,
            gflops=0.05)
    }


BENCHMARK = [  # as tools/benchmark.py writes them
    lb.benchmark_record(
        model='idynamic_t',
        mode='inference',
        batch_size=64,
        threads=16,
        device='cuda',
        dtype='fp32',
        images_per_s=1234.0,
        latency_ms=51.9,
        peak_mem_mb=2048.0),
    lb.benchmark_record(
        model='idynamic_t',
        mode='inference',
        batch_size=1,
        threads=16,
        device='cpu',
        dtype='fp32',
        images_per_s=45.6,
        latency_ms=21.9,
        peak_mem_mb=300.0),
    lb.benchmark_record(
        model='idynamic_t',
        mode='train',
        batch_size=64,
        threads=16,
        device='cuda',
        dtype='fp32',
        images_per_s=400.0,
        latency_ms=160.0,
        peak_mem_mb=9000.0),
]


def write_tree(root: Path, records: Dict[str, dict]) -> None:
    for rel, data in records.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


@pytest.fixture
def work_dirs(tmp_path: Path) -> Path:
    root = tmp_path / 'work_dirs'
    write_tree(root, {**full_records(), **toy_records()})
    (root / 'broken').mkdir()
    (root / 'broken' / 'result.json').write_text('{"model": "swin_t", "task": ')
    bad = record('swin_t', 'imagenet', 'imagenet', dict(top1=80.0))
    del bad['metrics']
    write_tree(root, {
        'nokeys/result.json': bad,
        'badtype/result.json': dict(bad, metrics=dict(top1='high'))
    })
    (root / 'benchmark').mkdir()
    (root / 'benchmark' / 'bench.json').write_text(json.dumps(BENCHMARK))
    (root / 'benchmark' / 'other.json').write_text(json.dumps({'not': 'a list'}))
    return root


if str(REPO / 'tools') not in sys.path:  # for the tool's `import _bootstrap`
    sys.path.append(str(REPO / 'tools'))  # last: shadows nothing
#: ``tools/leaderboard.py``'s globals, run in this process (a subprocess would spend seconds on
#: imports)
TOOL = runpy.run_path(str(REPO / 'tools' / 'leaderboard.py'), run_name='_tools_leaderboard')


def run(argv: List[str], capsys) -> tuple:
    """The command line in this process: exit code, stdout, stderr."""
    rc = tool_main(lambda: TOOL['main'](argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def md_row(md: str, first_cell: str, after: str = '') -> List[str]:
    """The cells of the first table row starting with ``first_cell`` (after the text ``after``)."""
    text = md[md.index(after):] if after else md
    for line in text.splitlines():
        if line.startswith(f'| {first_cell} |'):
            return [c.strip() for c in re.split(r'(?<!\\)\|', line.strip()[1:-1])]
    raise AssertionError(f'no row {first_cell!r} in\n{text}')


def column(name: str, tta=TTA) -> int:
    """Index of a main-table column (``'task:quantity'``) in a markdown row (0 is the model)."""
    return 1 + [c.key for c in lb.main_columns(tta)].index(name)


def latest_idyn() -> dict:
    return max((r for r in full_records().values() if r['model'] == 'idynamic_t'),
               key=lambda r: r['date'])


def test_default_outputs(work_dirs: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / 'out'
    rc, stdout, stderr = run(['--work-dirs', str(work_dirs), '--out', str(out)], capsys)
    assert rc == 0
    for ext in ('md', 'csv', 'html', 'png'):
        assert (out / f'leaderboard.{ext}').is_file()
    assert not [p for p in out.iterdir() if p.name.endswith('.tmp')]
    md = (out / 'leaderboard.md').read_text()
    assert md.strip() in stdout  # the table is printed as well

    # broken inputs: skipped with a warning naming the file, the rest still shown
    for bad in ('broken', 'nokeys', 'badtype'):
        assert str(work_dirs / bad / 'result.json') in stderr
    assert 'missing keys: metrics' in stderr

    full, toy = md.split('## Toy runs')
    # latest run by date, with the paper's reference and the difference
    latest = latest_idyn()
    row = md_row(full, display_name('idynamic_t'))
    ref = get_model_info('idynamic_t').paper['imagenet']
    assert row[column('imagenet:top1')] == cell(latest['metrics']['top1'], ref['top1'])
    assert row[column('imagenet:real_top1')] == cell(latest['metrics']['real_top1'],
                                                     ref['real_top1'])
    assert row[column('imagenet:params_m')] == cell(latest['params_m'], ref['params_m'])
    assert row[column('imagenet:gflops')] == cell(latest['gflops'], ref['gflops'], 2)
    assert row[column('coco:ap_box')] == ''  # missing task: empty cell
    assert row[-1] == 'GPU 1234 (bs 64); CPU 45.6 (bs 1)'  # inference only, with batch size

    swin = full_records()['swin/cascade/result.json']
    row = md_row(full, display_name('swin_t'))
    assert row[column('coco:ap_box')] == cell(swin['metrics']['ap_box'],
                                              paper('swin_t', 'coco_cascade', 'ap_box'))
    assert row[column('coco:ap_mask')] == cell(swin['metrics']['ap_mask'],
                                               paper('swin_t', 'coco_cascade', 'ap_mask'))
    assert row[column('coco:gflops')] == cell(swin['gflops'],
                                              paper('swin_t', 'coco_cascade', 'gflops'), 0)
    row = md_row(full, display_name('dwconv_t'))
    ade = full_records()['dwconv/ade/result.json']
    assert row[column('ade20k:miou')] == cell(ade['metrics']['miou'],
                                              paper('dwconv_t', 'ade20k', 'miou'))
    assert row[column('ade20k:miou_ms')] == cell(ade['metrics']['miou_ms'], None)
    assert row[column('ade20k:params_m')] == ''  # params null in the record

    # paper order, unknown model last with its own row and no reference
    order = [display_name(m) for m in ('swin_t', 'dwconv_t', 'idynamic_t', 'swin_b', UNKNOWN)]
    positions = [full.index(f'| {name} |') for name in order]
    assert positions == sorted(positions)
    mine = full_records()['mine/result.json']
    assert md_row(full, UNKNOWN)[column('imagenet:top1')] == cell(mine['metrics']['top1'], None)

    # other settings: per (model, setting); ImageNet-22k against the paper's second table
    other = full[full.index('### Other settings'):]
    maskrcnn = md_row(other, display_name('swin_t'))
    assert maskrcnn[1] == get_setting('coco_maskrcnn').title
    assert cell(full_records()['swin/maskrcnn/result.json']['metrics']['ap_box'], None) in maskrcnn
    in22k = md_row(other, display_name('swin_b'))
    assert in22k[1] == get_setting('imagenet_in22k_ft').title
    assert cell(84.93, paper('swin_b', 'imagenet_in22k_ft', 'top1')) in in22k

    # toy runs: own section with a banner, never in the full-scale tables, no paper references
    assert 'TOY' in toy
    assert cell(TOY_TOP1, None) in md_row(toy, display_name('ddwconv_t'))
    assert f'{TOY_TOP1:.1f}' not in full
    assert f'| {display_name("ddwconv_t")} |' not in full

    # properties from the backbones' own records; unknown model: '?'
    props = md[md.index('## Properties'):]
    for model in ('swin_t', 'dwconv_t', 'idynamic_t', 'ddwconv_t'):
        expected = ['\u2713' if v else '\u2717' for v in get_properties(model).as_dict().values()]
        assert md_row(props, display_name(model))[1:] == expected
    assert md_row(props, UNKNOWN)[1:] == ['?'] * 4

    # csv: machine-readable values, paper reference and difference
    rows = list(csv.DictReader((out / 'leaderboard.csv').open()))
    top1 = next(r for r in rows
                if r['scale'] == 'full' and r['model'] == 'idynamic_t' and r['quantity'] == 'top1')
    assert float(top1['ours']) == latest['metrics']['top1']
    assert float(top1['paper']) == ref['top1']
    assert float(top1['diff']) == pytest.approx(latest['metrics']['top1'] - ref['top1'])
    assert int(top1['runs']) == len(IDYN_RUNS)
    assert {r['scale']
            for r in rows if r['model'] == 'ddwconv_t' and r['section'] != 'properties'} == {'toy'}

    # html: one self-contained page with the plot inside
    page = (out / 'leaderboard.html').read_text()
    png = (out / 'leaderboard.png').read_bytes()
    assert png.startswith(b'\x89PNG\r\n\x1a\n')
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match and base64.b64decode(match.group(1)) == png
    assert '<style>' in page and '<link' not in page and 'src="http' not in page
    assert f'{latest["metrics"]["top1"]:.1f}' in page and 'TOY' in page
    assert display_name(UNKNOWN) in page


def test_best_and_mean(work_dirs: Path, tmp_path: Path, capsys) -> None:
    ref = paper('idynamic_t', 'imagenet', 'top1')
    rc, stdout, _ = run(['--work-dirs',
                         str(work_dirs), '--out',
                         str(tmp_path / 'b'), '--best'], capsys)
    assert rc == 0
    best = max(top1 for _, _, top1 in IDYN_RUNS)
    assert md_row(stdout, display_name('idynamic_t'))[column('imagenet:top1')] == cell(best, ref)

    rc, stdout, _ = run(['--work-dirs',
                         str(work_dirs), '--out',
                         str(tmp_path / 'm'), '--mean'], capsys)
    assert rc == 0
    per_seed = {}  # the latest run of each seed
    for seed, day, top1 in sorted(IDYN_RUNS, key=lambda r: r[1]):
        per_seed[seed] = top1
    values = list(per_seed.values())
    mean, std = statistics.fmean(values), statistics.stdev(values)
    expected = (f'{mean:.1f} \u00b1 {std:.1f} [n={len(values)}] '
                f'{cell(mean, ref)[len(f"{mean:.1f} "):]}')
    assert md_row(stdout, display_name('idynamic_t'))[column('imagenet:top1')] == expected
    swin = full_records()['swin/cascade/result.json']['metrics']['ap_box']  # one seed: n=1
    assert md_row(stdout, display_name('swin_t'))[column('coco:ap_box')] == (
        f'{swin:.1f} [n=1] '
        f'{cell(swin, paper("swin_t", "coco_cascade", "ap_box"))[len(f"{swin:.1f} "):]}')
    rows = list(csv.DictReader((tmp_path / 'm' / 'leaderboard.csv').open()))
    top1 = next(r for r in rows if r['model'] == 'idynamic_t' and r['quantity'] == 'top1')
    assert float(top1['ours']) == pytest.approx(mean, abs=1e-4)
    assert float(top1['std']) == pytest.approx(std, abs=1e-4)
    assert int(top1['n']) == len(values)


def test_toy_and_full_flags(work_dirs: Path, tmp_path: Path, capsys) -> None:
    rc, stdout, _ = run(['--work-dirs',
                         str(work_dirs), '--out',
                         str(tmp_path / 't'), '--toy'], capsys)
    assert rc == 0 and 'Toy runs' in stdout and 'Full-scale results' not in stdout
    assert cell(TOY_TOP1, None) in md_row(stdout, display_name('ddwconv_t'))
    assert f'{latest_idyn()["metrics"]["top1"]:.1f}' not in stdout

    rc, stdout, _ = run(['--work-dirs',
                         str(work_dirs), '--out',
                         str(tmp_path / 'f'), '--full'], capsys)
    assert rc == 0 and 'Toy runs' not in stdout and f'{TOY_TOP1:.1f}' not in stdout
    assert 'toy record(s) not shown' in stdout

    only_toy = tmp_path / 'only_toy'
    write_tree(only_toy, toy_records())
    rc, stdout, _ = run(['--work-dirs', str(only_toy), '--out', str(tmp_path / 'o')], capsys)
    assert rc == 0 and 'TOY' in stdout and 'Full-scale results' not in stdout
    assert cell(TOY_TOP1, None) in md_row(stdout, display_name('ddwconv_t'))


def test_empty_and_missing_work_dirs(tmp_path: Path, capsys) -> None:
    empty = tmp_path / 'empty'
    empty.mkdir()
    rc, stdout, _ = run(['--work-dirs', str(empty), '--out', str(tmp_path / 'out')], capsys)
    assert rc == 0
    assert 'No result records' in stdout
    assert '| Model |' in stdout  # empty table, headers only
    for ext in ('md', 'csv', 'html', 'png'):
        assert (tmp_path / 'out' / f'leaderboard.{ext}').is_file()

    # a nonexistent folder is one line on stderr and exit code 2, nothing written
    rc, stdout, stderr = run(['--work-dirs',
                              str(tmp_path / 'nope'), '--out',
                              str(tmp_path / 'x')], capsys)
    assert rc == 2 and not stdout
    assert len(stderr.splitlines()) == 1 and 'nope' in stderr
    assert not (tmp_path / 'x').exists()


def test_no_module_is_loaded_by_path() -> None:
    """The package and the tool import each other normally (no loading by file path)."""
    sources = list((REPO / 'harness' / 'leaderboard').glob('*.py'))
    sources.append(REPO / 'tools' / 'leaderboard.py')
    for path in sources:
        text = path.read_text()
        assert 'spec_from_file_location' not in text and '_load_sibling' not in text, path
    assert TOOL['lb'] is lb


def test_metafiles(work_dirs: Path, tmp_path: Path, capsys) -> None:
    complexity = [  # fills the FLOPs/params the ADE20K record lacks; idynamic_b only measured
        dict(
            model='dwconv_t',
            task='ade20k',
            config='configs/ade20k/dwconv_t_ade20k.py',
            params_m=55.9,
            gflops=927.6,
            input_hw=[512, 2048]),
        dict(
            model='idynamic_b',
            task='imagenet',
            config='configs/imagenet/idynamic_b_in1k.py',
            params_m=80.3,
            gflops=13.61,
            input_hw=[224, 224]),
    ]
    (tmp_path / 'flops.json').write_text(json.dumps(complexity))
    root = tmp_path / 'repo'
    rc, _, _ = run([
        '--work-dirs',
        str(work_dirs), '--out',
        str(tmp_path / 'out'), '--quiet', '--metafiles',
        str(root), '--complexity',
        str(tmp_path / 'flops.json')
    ], capsys)
    assert rc == 0
    index = yaml.safe_load((root / 'model-index.yml').read_text())
    files = {Path(p).stem: yaml.safe_load((root / p).read_text()) for p in index['Import']}
    assert set(files) == {'swin', 'dwconv', 'idynamic', 'mynet'}  # ddwconv_t: toy runs only
    models = {}
    for family, meta in files.items():
        collection = meta['Collections'][0]
        assert collection['Paper']['URL'] == 'https://arxiv.org/abs/2106.04263'
        for m in meta['Models']:
            assert m['In Collection'] == collection['Name']
            assert isinstance(m['Metadata']['FLOPs'], int)
            assert isinstance(m['Metadata']['Parameters'], int)
            models[m['Name']] = m

    expected = dict(
        full_records(), **{
            'cplx0': dict(complexity[0], metrics={}),
            'cplx1': dict(complexity[1], metrics={})
        })
    latest = latest_idyn()
    for rec in expected.values():
        m = models[Path(rec['config']).stem]
        assert m['Config'] == rec['config']
        comp = next((c for c in complexity if c['config'] == rec['config']), {})
        gflops = rec['gflops'] if rec.get('gflops') is not None else comp['gflops']
        params = rec['params_m'] if rec.get('params_m') is not None else comp['params_m']
        assert m['Metadata']['FLOPs'] == round(gflops * 1e9)
        assert m['Metadata']['Parameters'] == round(params * 1e6)
    idyn = models[Path(latest['config']).stem]
    assert idyn['Results'][0]['Metrics']['Top 1 Accuracy'] == latest['metrics']['top1']
    assert idyn['Weights'] == latest['checkpoint']
    cascade = models[Path(full_records()['swin/cascade/result.json']['config']).stem]
    assert {r['Task'] for r in cascade['Results']} == {'Object Detection', 'Instance Segmentation'}
    assert not models['idynamic_b_in1k']['Results']  # measured, never trained
    assert not any('ddwconv' in name for name in models)

    # toy runs never make a model-zoo entry; with nothing to write, existing files stay
    only_toy = tmp_path / 'only_toy'
    write_tree(only_toy, toy_records())
    rc, _, stderr = run([
        '--work-dirs',
        str(only_toy), '--out',
        str(tmp_path / 'o'), '--quiet', '--metafiles',
        str(tmp_path / 'repo2')
    ], capsys)
    assert rc == 0 and 'metafiles not written' in stderr
    assert not (tmp_path / 'repo2').exists()


def test_tta_test_runs_fill_their_column(tmp_path: Path, capsys) -> None:
    """``tools/test.py --tta`` writes ``test_result.json`` with ``tta: true`` and the metric
    under its tta name (``miou_ms``): it joins the entry of the same (model, setting, scale)."""
    root = tmp_path / 'work_dirs'
    train = record('dwconv_t', 'ade20k', 'ade20k', dict(miou=45.84), day=20)
    tta = record('dwconv_t', 'ade20k', 'ade20k', dict(miou_ms=46.93), day=21, tta=True)
    # a plain test run: read, not shown; a toy tta run: never in the full-scale entry
    plain = record('dwconv_t', 'ade20k', 'ade20k', dict(miou=11.11), day=22)
    toy = record('dwconv_t', 'ade20k', 'ade20k', dict(miou_ms=22.22), day=23, tta=True, toy=True)
    write_tree(
        root, {
            'ade/result.json': train,
            'ade/tta/test_result.json': tta,
            'ade/test/test_result.json': plain,
            'toy/tta/test_result.json': toy
        })
    out = tmp_path / 'out'
    rc, stdout, stderr = run(['--work-dirs', str(root), '--out', str(out), '--full'], capsys)
    assert rc == 0 and 'skipped' not in stderr
    row = md_row(stdout, display_name('dwconv_t'))
    assert row[column('ade20k:miou')] == cell(45.84, paper('dwconv_t', 'ade20k', 'miou'))
    assert row[column('ade20k:miou_ms')] == cell(46.93, None)
    assert '11.1' not in stdout and '22.2' not in stdout
    rows = list(csv.DictReader((out / 'leaderboard.csv').open()))
    ms = next(r for r in rows if r['quantity'] == 'miou_ms')
    assert float(ms['ours']) == 46.93 and ms['setting'] == 'ade20k'
    assert ms['note'] == str(root / 'ade' / 'tta' / 'test_result.json')

    # the model zoo gets it under the task table's metafile name
    rc, _, _ = run([
        '--work-dirs',
        str(root), '--out',
        str(out), '--quiet', '--full', '--metafiles',
        str(tmp_path / 'repo')
    ], capsys)
    meta = yaml.safe_load((tmp_path / 'repo' / 'metafiles' / 'dwconv.yml').read_text())
    metrics = meta['Models'][0]['Results'][0]['Metrics']
    assert metrics == {'mIoU': 45.84, 'mIoU(ms+flip)': 46.93}

    # a tta run without a training record still shows; --toy: the toy one only
    (root / 'ade' / 'result.json').unlink()
    rc, stdout, _ = run(['--work-dirs', str(root), '--out', str(out), '--full'], capsys)
    row = md_row(stdout, display_name('dwconv_t'))
    assert row[column('ade20k:miou_ms')] == cell(46.93, None) and row[column('ade20k:miou')] == ''
    rc, stdout, _ = run(['--work-dirs', str(root), '--out', str(out), '--toy'], capsys)
    assert md_row(stdout, display_name('dwconv_t'))[column('ade20k:miou_ms')] == cell(22.22, None)


def test_bad_inputs_are_warned_about_and_skipped(tmp_path: Path, capsys) -> None:
    root = tmp_path / 'work_dirs'
    good = record('swin_t', 'imagenet', 'imagenet', dict(top1=80.12))
    write_tree(
        root,
        {
            'good/result.json': good,
            'list/result.json': [good],  # JSON, but not an object
            'old/result.json': dict(good, schema=1, metrics=dict(top1=70.77)),
            'newer/result.json': dict(good, schema=3, metrics=dict(top1=71.88)),
        })
    bench = root / 'benchmark'
    bench.mkdir()
    (bench / 'malformed.json').write_text('[{"model": "swin_t", ')
    entries = [
        dict(BENCHMARK[0], model='swin_t', images_per_s=333.0),  # good
        'not an object',
        dict(BENCHMARK[0], model='swin_t', images_per_s=None),
        dict(BENCHMARK[0], model='swin_t', batch_size=True),
        dict(BENCHMARK[0], model='swin_t', schema=lb.BENCHMARK_SCHEMA_VERSION + 1),
        {
            k: v
            for k, v in BENCHMARK[0].items() if k != 'schema'
        },
    ]
    (bench / 'entries.json').write_text(json.dumps(entries))
    out = tmp_path / 'out'
    rc, stdout, stderr = run(['--work-dirs', str(root), '--out', str(out)], capsys)
    assert rc == 0
    warnings = [line for line in stderr.splitlines() if line.startswith('warning: skipped')]
    expected = [  # (file, what its warning says)
        ('list/result.json', 'expected a JSON object, got list'),
        ('old/result.json', 'schema version 1, this reader reads 2'),
        ('newer/result.json', 'schema version 3, this reader reads 2'),
        ('benchmark/malformed.json', 'cannot read JSON'),
    ]
    for i, reason in enumerate([
            'expected a JSON object', '"images_per_s" is None', '"batch_size" is True',
            f'schema version {lb.BENCHMARK_SCHEMA_VERSION + 1}', 'schema version None'
    ],
                               start=1):
        expected.append(('benchmark/entries.json', f'benchmark entry {i}: {reason}'))
    for path, reason in expected:
        found = [w for w in warnings if f'skipped {root / path}: ' in w and reason in w]
        assert len(found) == 1, (path, reason, warnings)
    assert len(warnings) == len(expected)
    # the skipped ones are listed on the board and show no value; the good ones show
    md = (out / 'leaderboard.md').read_text()
    skipped = md[md.index('## Skipped inputs'):]
    assert all(str(root / path) in skipped for path, _ in expected)
    row = md_row(stdout, display_name('swin_t'))
    assert row[column('imagenet:top1', ())] == cell(80.12, paper('swin_t', 'imagenet', 'top1'))
    assert row[-1] == 'GPU 333 (bs 64)'
    assert '70.8' not in stdout and '71.9' not in stdout


def paper_model_records() -> Dict[str, dict]:
    """All eight paper models on ImageNet with FLOPs near the paper's: the four T models within
    0.4 GFLOPs of each other."""
    measured = dict(
        swin_t=(4.21, 81.2),
        dwconv_t=(3.86, 81.4),
        ddwconv_t=(3.88, 81.8),
        idynamic_t=(3.97, 81.7),
        swin_b=(15.1, 83.4),
        dwconv_b=(12.7, 83.1),
        ddwconv_b=(12.8, 83.2),
        idynamic_b=(13.5, 83.3))
    return {
        f'{m}/result.json': record(m, 'imagenet', 'imagenet', dict(top1=top1), gflops=gflops)
        for m, (gflops, top1) in measured.items()
    }


def test_plot_labels_do_not_overlap(tmp_path: Path) -> None:
    records = paper_model_records()
    assert set(r['model'] for r in records.values()) == set(PAPER_MODELS)
    write_tree(tmp_path, records)
    fig = lb.plot_figure(lb.build_leaderboard(tmp_path))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_gid() == LABEL_GID]
        # ImageNet: our eight points (the paper's then unlabelled); COCO, ADE20K: the paper's
        assert sorted(t.get_text() for t in labels) == sorted(map(display_name, PAPER_MODELS))
        boxes = {t.get_text(): t.get_window_extent(renderer) for t in labels}
        for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
            assert not box_a.overlaps(box_b), f'{ax.get_title()}: {a} overlaps {b}'
        for name, box in boxes.items():
            assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1), name
    # the case is a hard one: at the point, the T models' labels would overlap
    ax = fig.axes[0]
    points = [
        ax.transData.transform((r['gflops'], r['metrics']['top1'])) for r in records.values()
        if r['model'].endswith('_t')
    ]
    width = min(b.width for b in boxes.values())
    assert any(
        abs(p[0] - q[0]) < width and abs(p[1] - q[1]) < 12
        for p, q in itertools.combinations(points, 2))
    fig.savefig(tmp_path / 'plot.png')  # renders


def test_html_holds_every_model_of_the_records(tmp_path: Path) -> None:
    records = {**paper_model_records(), **full_records(), **toy_records()}
    write_tree(tmp_path, records)
    (tmp_path / 'benchmark').mkdir()
    (tmp_path / 'benchmark' /
     'bench.json').write_text(json.dumps([dict(BENCHMARK[0],
                                               model='benchnet_s')]))  # benchmarked only
    board = lb.build_leaderboard(tmp_path)
    page = lb.render_html(board, b'\x89PNG')
    models = {r['model'] for r in records.values()} | {'benchnet_s'}
    assert set(board.models) == models
    for model in models:
        assert f'<td class="model">{display_name(model)}</td>' in page, model
    # each model has a main-table row in its scale's section (and one in the property table)
    full, toy = page.split('<section class="toy-section">')
    assert page.count(f'<td class="model">{display_name("ddwconv_t")}</td>') == 3  # +toy
    assert f'<td class="model">{display_name(UNKNOWN)}</td>' in full
    assert f'<td class="model">{display_name("ddwconv_t")}</td>' in toy


def task_fps(model: str, device: str, images_per_s: float, task: str) -> dict:
    """A record as ``tools/benchmark.py --tasks`` writes it (batch 1, the table's input)."""
    hw = {'coco': [800, 1333], 'ade20k': [512, 2048]}[task]
    return lb.benchmark_record(
        model,
        'inference',
        1,
        device,
        images_per_s,
        threads=2,
        dtype='float32',
        latency_ms=1e3 / images_per_s,
        task=task,
        input_hw=hw)


TASK_FPS = [  # the whole task models
    task_fps('swin_t', 'cpu', 0.031, 'coco'),
    task_fps('swin_t', 'cuda', 14.2, 'coco'),
    task_fps('idynamic_t', 'cpu', 0.052, 'ade20k'),
]


def test_task_fps_columns_beside_each_tasks_metrics(work_dirs: Path, tmp_path: Path,
                                                    capsys) -> None:
    # a --tasks report: an object whose records list the leaderboard reads
    report = dict(records=TASK_FPS, errors={}, batch_size=1, device='cpu')
    (work_dirs / 'benchmark' / 'tasks.json').write_text(json.dumps(report))
    out = tmp_path / 'out'
    rc, stdout, _ = run(['--work-dirs', str(work_dirs), '--out', str(out)], capsys)
    assert rc == 0
    md = (out / 'leaderboard.md').read_text()
    full = md.split('## Toy runs')[0]
    fps = [c.key for c in lb.main_columns(TTA, ['coco', 'ade20k'])]
    # one FPS column per task group that has values, after the task's metrics
    assert fps.index('coco:fps') == fps.index('coco:ap_mask') + 1 and 'imagenet:fps' not in fps
    assert fps.index('ade20k:fps') == fps.index('ade20k:miou_ms') + 1
    header = md_row(full, 'Model')
    assert header[1 + fps.index('coco:fps')] == 'COCO FPS (img/s)'
    row = md_row(full, display_name('swin_t'))
    assert row[1 + fps.index('coco:fps')] == 'GPU 14.2 (bs 1); CPU 0.031 (bs 1)'
    assert row[1 + fps.index('ade20k:fps')] == ''
    row = md_row(full, display_name('idynamic_t'))
    assert row[1 + fps.index('ade20k:fps')] == 'CPU 0.052 (bs 1)'
    # the backbone throughput column keeps the backbone-only records
    assert row[-1] == 'GPU 1234 (bs 64); CPU 45.6 (bs 1)'
    page = (out / 'leaderboard.html').read_text()
    assert '<th>FPS (img/s)</th>' in page and '<td>GPU 14.2 (bs 1); CPU 0.031 (bs 1)</td>' in page
    rows = list(csv.DictReader((out / 'leaderboard.csv').read_text().splitlines()))
    assert {(r['model'], r['task'], r['quantity'])
            for r in rows if r['task'] == 'coco' and r['section'] == 'throughput'
            } == {('swin_t', 'coco', 'images_per_s_cpu'), ('swin_t', 'coco', 'images_per_s_gpu')}


@pytest.mark.parametrize('change,reason', [
    (dict(task='mnist'), "unknown task 'mnist'"),
    (dict(input_hw=[800]), '"input_hw" is [800]'),
    (dict(input_hw=[0, 1333]), '"input_hw" is [0, 1333]'),
    (dict(schema=1), 'schema version 1'),
])
def test_task_benchmark_records_are_validated(change, reason) -> None:
    with pytest.raises(lb.records.RecordError, match=re.escape(reason)):
        lb.BenchmarkRecord.from_dict(dict(TASK_FPS[0], **change))
