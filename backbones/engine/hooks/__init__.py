"""Runtime hooks; importing this package registers them in mmengine's root HOOKS."""
from .epoch_seed_hook import EpochSeedHook
from .rank_mean_log_hook import RankMeanLogHook
from .result_record_hook import ResultRecordHook

__all__ = ['EpochSeedHook', 'RankMeanLogHook', 'ResultRecordHook']
