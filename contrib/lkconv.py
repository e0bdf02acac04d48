"""LK-DW-Conv: the worked example of ``docs/add_backbone.md``, a fifth backbone.

The paper's static DW-Conv network with a 13x13 instead of a 7x7 depth-wise kernel: does a
static depth-wise mixer gain from seeing beyond the 7x7 window that Swin's attention and the
paper's three convolutions share (the question later asked by RepLKNet and SLaK)? Everything else
is DW-Conv's: macro-architecture, spatial branch ``1x1 -> BN -> ReLU -> 13x13 dw -> BN -> ReLU ->
1x1 -> BN``, dense-task settings (SyncBN, maps padded to multiples of 7) and the three recipes.

A submission is this much: one class registered in mmengine's root ``MODELS`` (so mmpretrain,
mmdet and mmseg configs all build it) and one zoo entry (so the tools and the leaderboard know it
by name). Its configs come from the task templates::

    python tools/make_configs.py lkconv_t --import contrib.lkconv
    python tools/check_backbone.py lkconv_t --import contrib.lkconv
"""
from typing import Union

from backbones.dwnet import DWNet
from backbones.properties import BackboneProperties
from backbones.registry import MODELS
from backbones.zoo import DROP_PATH, register_model


@MODELS.register_module()
class LKConvNet(DWNet):
    """DW-Conv with a large static depth-wise kernel (13x13 by default).

    Accepts every argument of :class:`backbones.dwnet.DWNet` (``arch``, ``out_indices``,
    ``frozen_stages``, ``norm_eval``, ``with_cp``, ``init_cfg``, ...); only the default kernel
    size differs. The connectivity properties are DW-Conv's: a larger kernel is still local.
    """
    default_mixer = dict(type='Conv2d', bias=True)
    properties = BackboneProperties(
        sparse_connectivity=True,
        weight_sharing_across_channels=False,
        weight_sharing_across_positions=True,
        dynamic_weights=False)

    def __init__(self, arch: Union[str, dict] = 'tiny', kernel_size: int = 13, **kwargs) -> None:
        super().__init__(arch=arch, kernel_size=kernel_size, **kwargs)


register_model(
    'lkconv_t',
    dict(type='LKConvNet', arch='tiny', drop_path_rate=0.2),
    display_name='LK-DW Conv.-T',
    drop_path=DROP_PATH['t'])
