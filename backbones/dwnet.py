"""The DW-family macro-architecture: Swin's skeleton with window attention replaced by a
depth-wise 7x7 spatial branch.

Everything here is shared by DW-Conv, D-DW-Conv and I-Dynamic; the three registered classes at
the bottom differ only in ``default_mixer``, the 7x7 operation in the middle of the spatial
branch, which is exactly what the paper varies.
"""
import copy
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed, PatchMerging
from mmengine.model import BaseModule, ModuleList
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm

from .properties import BackboneProperties
from .registry import MODELS


def tokens_to_map(x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W) map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw_shape)


def apply_channel_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-channel norm to a (B, C, H, W) map; LayerNorm normalises the last dim."""
    if isinstance(norm, nn.LayerNorm):
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return norm(x)


class DWBlock(BaseModule):
    """``x + DropPath(spatial(x))`` then ``x + DropPath(MLP(BN(x)))`` on (B, C, H, W) maps.

    ``spatial = 1x1 conv -> BN -> ReLU -> KxK mixer -> BN -> ReLU -> 1x1 conv -> BN``: the mixer
    replaces window attention, the 1x1 convs its input and output projections. There is no
    pre-norm on the spatial branch (the official code has none).

    Args:
        embed_dims (int): channels C.
        mixer_cfg (dict): ``conv_cfg`` of the KxK depth-wise mixer (``type`` and its own
            arguments; ``bias`` is taken out and passed to the conv).
        kernel_size (int): K. Defaults to 7.
        mlp_ratio (float): hidden channels of the MLP relative to C. Defaults to 4.
        drop_rate (float): dropout inside the MLP. Defaults to 0.
        drop_path (float): stochastic-depth rate of both residual branches. Defaults to 0.
        norm_cfg (dict): norm of the spatial branch and before the MLP. Defaults to
            ``dict(type='BN')``.
        pad_to_multiple (int): zero-pad the map to a multiple of this before the spatial branch
            and crop after, as the official detection / segmentation code did to keep Swin's
            window grid; 0 disables it. Defaults to 0.
        with_cp (bool): recompute the block in backward (``torch.utils.checkpoint``) to save
            memory. Defaults to False.
        init_cfg (dict, optional): initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 mixer_cfg: dict,
                 kernel_size: int = 7,
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_path: float = 0.,
                 norm_cfg: dict = dict(type='BN'),
                 pad_to_multiple: int = 0,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        mixer_cfg = copy.deepcopy(mixer_cfg)
        mixer_bias = mixer_cfg.pop('bias', True)
        self.pad_to_multiple = pad_to_multiple
        self.with_cp = with_cp
        self.pw_in = ConvModule(
            embed_dims, embed_dims, 1, bias=False, norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'))
        with warnings.catch_warnings():  # the paper's static conv has a bias before its BN
            warnings.filterwarnings('ignore', 'Unnecessary conv bias')
            self.mixer = ConvModule(
                embed_dims,
                embed_dims,
                kernel_size,
                padding=kernel_size // 2,
                groups=embed_dims,
                bias=mixer_bias,
                conv_cfg=mixer_cfg,
                norm_cfg=norm_cfg,
                act_cfg=dict(type='ReLU'))
        self.pw_out = ConvModule(
            embed_dims, embed_dims, 1, bias=False, norm_cfg=norm_cfg, act_cfg=None)
        self.mlp_norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=int(embed_dims * mlp_ratio),
            num_fcs=2,
            ffn_drop=drop_rate,
            act_cfg=dict(type='GELU'),
            add_identity=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.pad_to_multiple:
            m = self.pad_to_multiple
            x = F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m))
        x = self.pw_out(self.mixer(self.pw_in(x)))
        return x[..., :h, :w]

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mlp_norm(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        def _inner_forward(x):
            x = x + self.drop_path(self.spatial(x))
            return x + self.drop_path(self.mlp(x))

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)


class DWStage(BaseModule):
    """A sequence of DWBlocks, followed by Swin's patch merging except in the last stage.

    Args:
        embed_dims (int): channels of the stage.
        depth (int): number of blocks.
        downsample (bool): end with patch merging (2x2 -> LN -> Linear, C -> 2C).
        drop_paths (Sequence[float]): stochastic-depth rate of each block.
        block_cfg (dict): the other arguments of :class:`DWBlock`.
        init_cfg (dict, optional): initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int,
                 downsample: bool,
                 drop_paths: Sequence[float],
                 block_cfg: dict,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.embed_dims = embed_dims
        self.blocks = ModuleList(
            DWBlock(embed_dims, drop_path=drop_paths[i], **block_cfg) for i in range(depth))
        self.downsample = PatchMerging(
            embed_dims, 2 * embed_dims, norm_cfg=dict(type='LN')) if downsample else None

    @property
    def out_channels(self) -> int:
        return 2 * self.embed_dims if self.downsample is not None else self.embed_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """Swin's patch merging on a (B, C, H, W) map (odd sizes are padded at the corner)."""
        tokens, hw_shape = self.downsample(x.flatten(2).transpose(1, 2), x.shape[-2:])
        return tokens_to_map(tokens, hw_shape)


class DWNet(BaseModule):
    """Swin's macro-architecture with a depth-wise spatial branch in place of window attention.

    Subclasses set ``default_mixer`` (the ``conv_cfg`` of the KxK mixer, with its ``bias``) and
    ``properties``; that is all that tells DW-Conv, D-DW-Conv and I-Dynamic apart. Follows the
    OpenMMLab backbone contract (``out_indices``, ``frozen_stages``, ``norm_eval``,
    ``with_cp``, ``init_cfg``).

    Args:
        arch (str | dict): ``'tiny'`` / ``'t'`` (96, [2, 2, 6, 2]), ``'base'`` / ``'b'`` (128,
            [2, 2, 18, 2]), or a dict with ``embed_dims`` and ``depths`` (other keys, e.g.
            Swin's ``num_heads``, are ignored). Defaults to ``'tiny'``.
        in_channels (int): input channels. Defaults to 3.
        patch_size (int): stride of the patch embedding. Defaults to 4.
        kernel_size (int): K of the spatial mixer. Defaults to 7.
        mlp_ratio (float): MLP hidden channels relative to C. Defaults to 4.
        drop_rate (float): dropout after the patch embedding and in the MLPs. Defaults to 0.
        drop_path_rate (float): stochastic depth, rising linearly to this over the blocks.
            Defaults to 0.1.
        out_indices (Sequence[int] | int): stages whose outputs are returned. Defaults to
            ``(3, )``.
        frozen_stages (int): freeze the patch embedding and stages ``0..frozen_stages`` (and
            their output norms): no gradients, eval mode; -1 freezes nothing. Defaults to -1.
        norm_eval (bool): keep every BatchNorm in eval mode under ``train()``. Defaults to
            False.
        with_cp (bool): gradient checkpointing of every block. Defaults to False.
        norm_cfg (dict): norm inside the blocks (BN for classification, SyncBN for dense
            tasks). Defaults to ``dict(type='BN')``.
        out_norm_cfg (dict, optional): norm on each output (``norm{i}``); LN as in Swin and
            the official classification code, so a classification checkpoint's final norm
            loads; None: no norm. Defaults to ``dict(type='LN')``.
        mixer_cfg (dict, optional): keys that override ``default_mixer``; a list or tuple
            value gives one value per stage (e.g. I-Dynamic's ``kernel_groups``). Defaults to
            None.
        pad_to_multiple (int): see :class:`DWBlock`; the official dense-task code used 7.
            Defaults to 0.
        init_cfg (dict | list, optional): initialisation config. Defaults to truncated-normal
            Linear layers and unit norms.
    """
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 6, 2])),
        **dict.fromkeys(['b', 'base'], dict(embed_dims=128, depths=[2, 2, 18, 2])),
    }
    default_mixer: dict = dict(type='Conv2d', bias=True)
    properties: BackboneProperties
    #: settings of the official detection / segmentation code
    dense_task_cfg = dict(norm_cfg=dict(type='SyncBN', requires_grad=True), pad_to_multiple=7)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 patch_size: int = 4,
                 kernel_size: int = 7,
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 out_norm_cfg: Optional[dict] = dict(type='LN'),
                 mixer_cfg: Optional[dict] = None,
                 pad_to_multiple: int = 0,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
                dict(type='Constant', layer=['LayerNorm', '_BatchNorm'], val=1., bias=0.),
            ]
        super().__init__(init_cfg)
        self.arch_settings = self._parse_arch(arch)
        self.embed_dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        self.num_layers = len(depths)
        self.out_indices = self._parse_out_indices(out_indices, self.num_layers)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.mixer_cfg = self._stage_mixer_cfgs(mixer_cfg, norm_cfg)
        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=self.embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            norm_cfg=dict(type='LN'))
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        drop_paths = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = ModuleList()
        self.num_features = []
        dims = self.embed_dims
        for i, depth in enumerate(depths):
            block_cfg = dict(
                mixer_cfg=self.mixer_cfg[i],
                kernel_size=kernel_size,
                mlp_ratio=mlp_ratio,
                drop_rate=drop_rate,
                norm_cfg=norm_cfg,
                pad_to_multiple=pad_to_multiple,
                with_cp=with_cp)
            stage = DWStage(
                dims,
                depth,
                downsample=i < self.num_layers - 1,
                drop_paths=drop_paths[:depth],
                block_cfg=block_cfg)
            drop_paths = drop_paths[depth:]
            self.stages.append(stage)
            self.num_features.append(dims)
            dims = stage.out_channels

        for i in self.out_indices:
            norm = build_norm_layer(out_norm_cfg, self.num_features[i])[1] \
                if out_norm_cfg is not None else nn.Identity()
            self.add_module(f'norm{i}', norm)
        self._freeze_stages()

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'unknown arch {arch!r} for {type(self).__name__}; '
                                 f'choose from {sorted(self.arch_zoo)} or pass a dict')
            return copy.deepcopy(self.arch_zoo[arch.lower()])
        missing = {'embed_dims', 'depths'} - set(arch)
        if missing:
            raise ValueError(f'a custom arch needs the keys {sorted(missing)}')
        return dict(arch)

    @staticmethod
    def _parse_out_indices(out_indices: Union[int, Sequence[int]], num_layers: int) -> tuple:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out = tuple(i + num_layers if i < 0 else i for i in out_indices)
        if any(not 0 <= i < num_layers for i in out):
            raise ValueError(f'out_indices {tuple(out_indices)} out of range for '
                             f'{num_layers} stages')
        return out

    def _stage_mixer_cfgs(self, mixer_cfg: Optional[dict], norm_cfg: dict) -> list:
        """One mixer config per stage: per-stage sequences (e.g. kernel_groups) are split, and
        dynamic mixers' own norms follow the backbone's ``norm_cfg``."""
        cfg = {**copy.deepcopy(self.default_mixer), **copy.deepcopy(mixer_cfg or {})}
        if 'norm_cfg' in cfg and cfg['norm_cfg'] is None:
            cfg['norm_cfg'] = norm_cfg
        per_stage = []
        for i in range(self.num_layers):
            stage_cfg = {}
            for key, value in cfg.items():
                if isinstance(value, (list, tuple)):
                    if len(value) != self.num_layers:
                        raise ValueError(f'mixer_cfg[{key!r}] has {len(value)} entries for '
                                         f'{self.num_layers} stages')
                    value = value[i]
                stage_cfg[key] = value
            per_stage.append(stage_cfg)
        return per_stage

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x, hw_shape = self.patch_embed(x)
        x = tokens_to_map(self.drop_after_pos(x), hw_shape)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(apply_channel_norm(getattr(self, f'norm{i}'), x).contiguous())
            if stage.downsample is not None:
                x = stage.merge(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.patch_embed.eval()
            for param in self.patch_embed.parameters():
                param.requires_grad = False
        for i in range(0, min(self.frozen_stages + 1, self.num_layers)):
            self.stages[i].eval()
            for param in self.stages[i].parameters():
                param.requires_grad = False
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                norm.eval()
                for param in norm.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'DWNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@MODELS.register_module()
class DWConvNet(DWNet):
    """DW-Conv: a static 7x7 depth-wise convolution (with bias) in place of window attention.

    Weights are shared across positions and learned, not computed from the input.
    """
    default_mixer = dict(type='Conv2d', bias=True)
    properties = BackboneProperties.of('depth-wise convolution')


@MODELS.register_module()
class DynamicDWConvNet(DWNet):
    """D-DW-Conv: kernels predicted per sample and channel from the pooled input.

    Homogeneous: one kernel for all positions, as in DW-Conv, but computed from the input,
    as attention weights are. Mixer: :class:`~backbones.mixers.DynamicDWConv`.
    """
    default_mixer = dict(type='DynamicDWConv', bias=True, reduction=4, norm_cfg=None)
    properties = BackboneProperties.of('dynamic depth-wise convolution')


@MODELS.register_module()
class IDynamicNet(DWNet):
    """I-Dynamic: kernels predicted per position, shared by groups of channels.

    ``mixer_cfg=dict(kernel_groups=[3, 6, 12, 24])`` gives the setting whose FLOPs match the
    paper's table (G = number of heads) instead of the official code's G = 32.
    """
    default_mixer = dict(
        type='IDynamicDWConv', bias=False, kernel_groups=32, reduction=4, norm_cfg=None)
    properties = BackboneProperties.of('inhomogeneous dynamic depth-wise convolution')
