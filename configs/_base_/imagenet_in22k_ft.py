# ImageNet-1k fine-tuning of an ImageNet-22k pre-trained backbone at 224 (the paper's second
# table), Swin's official 22k->1k recipe: 30 epochs, 5 warm-up, AdamW lr 2e-5 x 1024/512 = 4e-5,
# wd 1e-8, cosine to 4e-7, drop-path 0.2, 1k augmentation. The thin configs load the backbone
# from checkpoints/<model>_in22k.pth; the 1k head starts from scratch (Swin instead maps the 22k
# head rows of the 1k classes; that needs the WordNet id list, not shipped here).
_base_ = './imagenet_in1k.py'

optim_wrapper = dict(optimizer=dict(lr=2e-5 * 1024 / 512, weight_decay=1e-8))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=4e-7, by_epoch=True, begin=5)
]
train_cfg = dict(max_epochs=30)
