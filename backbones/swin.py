"""Swin Transformer, the local-attention side of the comparison.

Window attention is not rewritten: this is mmpretrain's ``SwinTransformer``, registered in the
root registry under this project's naming scheme so that mmdet and mmseg configs build it too.
"""
from mmpretrain.models.backbones import SwinTransformer

from .properties import BackboneProperties
from .registry import MODELS


@MODELS.register_module()
class SwinNet(SwinTransformer):
    """mmpretrain's Swin Transformer (shifted windows, relative position bias).

    Heads share attention weights across the channels of a head, and attention weights are
    computed per query position: dynamic and inhomogeneous.
    """
    properties = BackboneProperties.of('local attention')
    #: dense inputs: pad small maps to the window instead of shrinking the window
    dense_task_cfg = dict(pad_small_map=True)

    def train(self, mode: bool = True) -> 'SwinNet':
        # mmpretrain's train() returns None, which breaks ``model.train().eval()`` chains.
        super().train(mode)
        return self
