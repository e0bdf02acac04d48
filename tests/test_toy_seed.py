"""Toy runs are seeded (seed 0 unless ``--seed``), and the leaderboard prints the seeds of the
toy table, so the demo's table is the same on every machine."""
import json
from pathlib import Path

from backbones.engine import ResultRecord
from harness.leaderboard import build_leaderboard, render_html, render_markdown
from harness.running import prepare_config, run_parser

CONFIG = 'configs/imagenet/dwconv_t_in1k.py'


def test_toy_runs_default_to_seed_0(toy_data):
    data = str(toy_data('imagenet', num_classes=2, train_per_class=2, val_per_class=1))
    parse = run_parser('train', '').parse_args
    toy = prepare_config(parse([CONFIG, '--toy', '--toy-data', data]), 'train')[0]
    assert toy.randomness.seed == 0
    chosen = prepare_config(parse([CONFIG, '--toy', '--toy-data', data, '--seed', '7']), 'train')
    assert chosen[0].randomness.seed == 7


def test_the_toy_table_names_its_seeds(tmp_path: Path):
    for model, seed in (('dwconv_t', 0), ('swin_t', 3)):
        run = tmp_path / 'toy' / 'imagenet' / f'{model}_in1k'
        run.mkdir(parents=True)
        record = ResultRecord(
            model=model,
            task='imagenet',
            template='imagenet',
            metrics=dict(top1=50.0),
            toy=True,
            seed=seed,
            date='2026-12-01T00:00:00+00:00')
        (run / 'result.json').write_text(json.dumps(record.to_dict()))
    board = build_leaderboard(tmp_path)
    assert 'Seeds: 0, 3.' in render_markdown(board)
    assert 'Seeds: 0, 3.' in render_html(board, b'')
