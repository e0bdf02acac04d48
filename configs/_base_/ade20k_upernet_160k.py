# UperNet (512 channels, pool scales 1,2,3,6) + FCN auxiliary head (weight 0.4) on ADE20K, 160k
# iterations, crop 512x512, AdamW 6e-5, wd 0.01 (none on norms and position tables), poly decay
# after 1500 warm-up iterations, 8 GPUs x 2 images. Single-scale test; multi-scale with
# ``tools/test.py ... --tta``. Backbone drop-path 0.3 is set by the thin configs.
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'

custom_imports = dict(imports=['backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='SwinNet', arch='tiny', out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))

optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))
