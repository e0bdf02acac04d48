"""OpenMMLab model-zoo files: ``metafiles/<family>.yml`` and ``model-index.yml``.

One metafile per model family (the zoo's), one model entry per config, in mmpretrain's format,
so that the models show up where OpenMMLab users look for them. Results come only from
full-scale entries; params/FLOPs missing from the records come from ``tools/get_flops.py --all
--json``.
"""
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from backbones.engine.fileio import atomic_write
from backbones.engine.result_record import RecordError, number_field, string_field
from ..tasks import TASKS
from .aggregate import Entry, EntryKey
from .catalog import CODE_URL, PAPER_TITLE, PAPER_URL, family, model_order
from .records import read_json, skip


def load_complexity(path: Path, warnings: List[str]) -> List[dict]:
    """The records of ``tools/get_flops.py --all --json``; malformed ones are skipped.

    Args:
        path (Path): the JSON file (a list of objects with ``model``, ``task``, ``config``,
            ``params_m``, ``gflops``).
        warnings (list[str]): collects a message per skipped file or entry.

    Returns:
        list[dict]: ``dict(model, task, config, params_m, gflops)`` per valid entry.
    """
    data = read_json(path, warnings)
    if data is None:
        return []
    if not isinstance(data, list):
        skip(path, 'expected a JSON list of complexity records', warnings)
        return []
    good = []
    for i, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise RecordError('not an object')
            if item.get('task') not in TASKS:
                raise RecordError(f'unknown task {item.get("task")!r}')
            good.append(
                dict(
                    model=string_field(item, 'model', optional=True),
                    task=item['task'],
                    config=string_field(item, 'config', optional=True),
                    params_m=number_field(item.get('params_m'), '"params_m"'),
                    gflops=number_field(item.get('gflops'), '"gflops"')))
        except RecordError as exc:
            skip(path, f'complexity entry {i}: {exc}', warnings)
    return good


def _norm_config(config: Optional[str]) -> str:
    return os.path.normpath(config) if config else ''


def _results(entry: Entry) -> List[dict]:
    """The entry's metrics under the metafile names of the task table, grouped by metafile
    task."""
    task = TASKS[entry.task]
    grouped: Dict[str, Dict[str, float]] = {}
    for m in task.metrics:
        if m.metafile is None:
            continue
        names = [(m.name, m.metafile[1])]
        if m.tta_name and m.tta_metafile:
            names.append((m.tta_name, m.tta_metafile))
        for key, name in names:
            if key in entry.metrics:
                grouped.setdefault(m.metafile[0], {})[name] = round(entry.metrics[key].mean, 2)
    return [{'Task': t, 'Dataset': task.dataset, 'Metrics': v} for t, v in grouped.items()]


def _collection(model: str) -> Dict[str, Any]:
    """An empty metafile of the model's family."""
    _, title, tags = family(model)
    metadata: Dict[str, Any] = {'Training Data': [t.dataset for t in TASKS.values()]}
    if tags:
        metadata['Architecture'] = list(tags)
    return {
        'Collections': [{
            'Name': title,
            'Metadata': metadata,
            'Paper': {
                'Title': PAPER_TITLE,
                'URL': PAPER_URL
            },
            'Code': {
                'URL': CODE_URL
            }
        }],
        'Models': []
    }


def _model_entry(name: str, info: dict, collection: str) -> Dict[str, Any]:
    meta: Dict[str, Any] = {}
    if info['gflops'] is not None:
        meta['FLOPs'] = int(round(info['gflops'] * 1e9))
    if info['params_m'] is not None:
        meta['Parameters'] = int(round(info['params_m'] * 1e6))
    meta['Training Data'] = TASKS[info['task']].dataset
    item: Dict[str, Any] = {
        'Name': name,
        'In Collection': collection,
        'Metadata': meta,
        'Results': info['results'] or None
    }
    if info['config']:
        item['Config'] = info['config']
    if info['weights']:
        item['Weights'] = info['weights']
    return item


def build_metafiles(entries: Dict[EntryKey, Entry],
                    complexity: Sequence[dict] = ()) -> Dict[str, dict]:
    """The model-zoo files' content.

    Args:
        entries (dict): ``{(toy, model, setting): Entry}``; toy entries never enter the zoo.
        complexity (Sequence[dict]): :func:`load_complexity` records: params/FLOPs where the
            records lack them, and configs measured but not trained (listed without results).
            Defaults to none.

    Returns:
        dict: ``{family: metafile}``, in mmpretrain's format.
    """
    by_config = {_norm_config(c['config']): c for c in complexity if c['config']}
    by_task = {(c['model'], c['task']): c for c in complexity if c['model']}
    models: Dict[str, dict] = {}  # model name in the metafile -> what it says
    for (toy, model, setting), entry in sorted(entries.items(), key=lambda kv: kv[0][1:]):
        if toy:
            continue
        comp = by_config.get(_norm_config(entry.config))
        if comp is None and setting == TASKS[entry.task].table_setting.key:
            comp = by_task.get((model, entry.task))
        params = entry.params_m if entry.params_m is not None else (comp or {}).get('params_m')
        gflops = entry.gflops if entry.gflops is not None else (comp or {}).get('gflops')
        name = Path(entry.config).stem if entry.config else f'{model}_{setting}'
        models[name] = dict(
            model=model,
            task=entry.task,
            config=entry.config,
            params_m=params,
            gflops=gflops,
            results=_results(entry),
            weights=entry.checkpoint)
    for comp in complexity:  # configs measured but not (yet) trained at full scale
        if comp['model'] and comp['config'] and Path(comp['config']).stem not in models:
            models[Path(comp['config']).stem] = dict(comp, results=[], weights=None)
    families: Dict[str, dict] = {}
    order = model_order(m['model'] for m in models.values())
    for name in sorted(models, key=lambda n: (order.index(models[n]['model']), n)):
        info = models[name]
        key = family(info['model'])[0]
        meta = families.setdefault(key, _collection(info['model']))
        collection = meta['Collections'][0]['Name']
        meta['Models'].append(_model_entry(name, info, collection))
    return families


def write_metafiles(families: Dict[str, dict], root: Path) -> List[Path]:
    """Write ``<root>/metafiles/<family>.yml`` and ``<root>/model-index.yml`` importing them,
    each atomically.

    Args:
        families (dict): :func:`build_metafiles`'s result.
        root (Path): the repository (or any folder).

    Returns:
        list[Path]: the files written, the index last.
    """
    import yaml

    written = []
    for key, meta in families.items():  # in model order (build_metafiles)
        path = root / 'metafiles' / f'{key}.yml'
        atomic_write(path, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
        written.append(path)
    index = {'Import': [f'metafiles/{p.name}' for p in written]}
    atomic_write(root / 'model-index.yml', yaml.safe_dump(index, sort_keys=False))
    return written + [root / 'model-index.yml']
