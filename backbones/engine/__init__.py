"""What a run needs at run time besides the models (mmpretrain's ``engine`` layout): hooks,
optimizer wrappers, atomic file writes and the result-record schema. Importing it registers
the hooks, the wrapper and the ``atomic_local`` file backend."""
from . import fileio, hooks, optimizers  # noqa: F401  (registrations)
from .fileio import AtomicLocalBackend, atomic_write
from .hooks import EpochSeedHook, RankMeanLogHook, ResultRecordHook
from .optimizers import CPUAutocastOptimWrapper
from .result_record import SCHEMA_VERSION, RecordError, ResultRecord

__all__ = [
    'AtomicLocalBackend', 'CPUAutocastOptimWrapper', 'EpochSeedHook', 'RankMeanLogHook',
    'RecordError', 'ResultRecord', 'ResultRecordHook', 'SCHEMA_VERSION', 'atomic_write'
]
