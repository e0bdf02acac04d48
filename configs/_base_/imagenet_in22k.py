# ImageNet-22k pre-training (the paper's second table, B models), Swin's official 22k recipe:
# 90 epochs, 5 warm-up, AdamW lr 1.25e-4 x 4096/512 = 1e-3, wd 0.05, cosine to 1e-5, 64 GPUs x 64
# = 4096 images per step, drop-path 0.2 (set by the thin configs); augmentation, clip and label
# smoothing as the 1k recipe. Validation: top-1/top-5 on a held-out list of 22k images that the
# user provides as meta/val.txt + val/ (ImageNet-21k has no official validation split; ReaL is a
# 1k protocol). Fine-tune with configs/imagenet/*_in22k-ft-in1k.py.
_base_ = './imagenet_in1k.py'

num_classes = 21841
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))

data_root = 'data/imagenet21k'
train_dataloader = dict(batch_size=64, dataset=dict(type='ImageNet21k', data_root=data_root))
val_dataloader = dict(
    dataset=dict(
        type='ImageNet21k',
        data_root=data_root,
        split='',
        ann_file='meta/val.txt',
        data_prefix='val'))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5))]
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1.25e-4 * 4096 / 512))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5)
]
train_cfg = dict(max_epochs=90)
auto_scale_lr = dict(base_batch_size=4096)
