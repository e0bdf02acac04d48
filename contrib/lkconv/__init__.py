"""LK-DW-Conv: the worked example of ``docs/add_backbone.md``, a fifth backbone.

The paper's static DW-Conv network with a 13x13 instead of a 7x7 depth-wise kernel (see
``README.md`` beside this file). A submission is this folder: one class registered in
mmengine's root ``MODELS`` (so mmpretrain, mmdet and mmseg configs all build it), one zoo entry
(so the tools and the leaderboard know it by name) and its generated configs under
``configs/``::

    python tools/make_configs.py lkconv_t --import contrib.lkconv
    python tools/check_backbone.py lkconv_t --import contrib.lkconv
"""
from typing import Union

from backbones import DWConvNet
from backbones.registry import MODELS
from backbones.zoo import DROP_PATH, register_model

__all__ = ['LKConvNet']


@MODELS.register_module()
class LKConvNet(DWConvNet):
    """DW-Conv with a large static depth-wise kernel.

    Everything but the default kernel size is :class:`backbones.DWConvNet`'s: the mixer (a
    depth-wise conv with bias), the dense-task settings (``dense_task_cfg``), and the
    connectivity properties of the leaderboard (a larger kernel is still local and static).

    Args:
        arch (str | dict): ``'tiny'`` / ``'t'``, ``'base'`` / ``'b'``, or a dict with
            ``embed_dims`` and ``depths``. Defaults to ``'tiny'``.
        kernel_size (int): side of the depth-wise kernel. Defaults to 13.
        **kwargs: every other argument of :class:`backbones.DWNet` (``out_indices``,
            ``drop_path_rate``, ``frozen_stages``, ``norm_eval``, ``with_cp``, ``init_cfg``, ...).
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', kernel_size: int = 13, **kwargs) -> None:
        super().__init__(arch=arch, kernel_size=kernel_size, **kwargs)


register_model(
    'lkconv_t',
    dict(type='LKConvNet', arch='tiny', drop_path_rate=0.2),
    display_name='LK-DW Conv.-T',
    drop_path=DROP_PATH['t'],
    config_root='contrib/lkconv/configs')
