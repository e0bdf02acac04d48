"""``EpochSeedHook``: randomness that a resumed run replays."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed python, numpy and torch at the start of each training epoch from (seed, epoch).

    mmengine restores the model, optimizer, schedulers and message hub on resume, but not the
    random generators; a resumed run would draw other augmentations, drop-path masks and
    mixup/cutmix pairs than the uninterrupted run. Reseeding from the epoch makes a run resumed
    from an epoch checkpoint replay exactly the epochs the uninterrupted run trains (with
    non-persistent loader workers, which are seeded from the main process at each epoch)."""
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        from mmengine.runner.utils import set_random_seed
        randomness = runner.cfg.get('randomness') or {}
        seed = (int(runner.seed) + 1_000_003 * runner.epoch) % 2**31
        set_random_seed(seed, diff_rank_seed=randomness.get('diff_rank_seed', False))
