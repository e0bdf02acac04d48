"""``RankMeanLogHook``: log the whole batch's losses in distributed runs."""
import zlib
from typing import Any, Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankMeanLogHook(Hook):
    """Log the mean over the processes of each training output (losses, accuracies) instead of
    rank 0's own: the logged loss of an N-process run is then that of its whole batch, as in a
    1-process run with the same total batch. Two small all-reduces per iteration; where the
    processes' output names differ, rank 0's values are logged as they are."""
    priority = 'HIGHEST'  # before RuntimeInfoHook records the outputs in the message hub

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        from mmengine.dist import all_reduce, all_reduce_dict, get_world_size
        if not outputs or get_world_size() < 2:
            return
        values = {
            k:
            v.detach().float().reshape(-1)[:1].clone()
            if torch.is_tensor(v) else torch.tensor([float(v)])
            for k, v in outputs.items() if torch.is_tensor(v) or isinstance(v, (int, float))
        }
        names = float(zlib.crc32('|'.join(sorted(values)).encode()))
        check = torch.tensor([names, -names], dtype=torch.float64)
        all_reduce(check, op='max')
        if check[0] != -check[1]:
            return
        all_reduce_dict(values, op='mean')
        for key, value in values.items():
            outputs[key] = value.reshape(())
