# Mask R-CNN + FPN, 1x schedule, mmdet's Swin recipe (AdamW 1e-4, wd 0.05, no decay on norms and
# position tables, 12 epochs, steps 8/11). Thin configs set model.backbone and neck.in_channels.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='SwinNet', arch='tiny', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))
