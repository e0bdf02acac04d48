# ImageNet-1k classification, the paper's recipe (= mmpretrain's Swin recipe): 300 epochs, 20
# warm-up, AdamW lr 5e-4 x 1024/512, wd 0.05 (none on norms, biases, position tables), cosine to
# 1e-5, grad clip 5, RandAugment m9/mstd0.5, mixup 0.8, cutmix 1.0, random erasing 0.25, label
# smoothing 0.1, 16 GPUs x 64 = 1024 images per step. Thin configs set model.backbone.
_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'

custom_imports = dict(imports=['backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='SwinNet', arch='tiny', drop_path_rate=0.2),
    head=dict(in_channels=768))

data_root = 'data/imagenet'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

# The table's "real acc." column: ImageNet-ReaL labels of the 50k validation images.
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='ReaLAccuracy', real_file=data_root + '/real.json'),
]
test_evaluator = val_evaluator
