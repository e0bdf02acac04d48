"""Running a config: reading and validating it, adapting it to the machine and to toy data,
resuming from checkpoints, starting process groups, and building mmengine's Runner."""
from .args import run_main, run_parser
from .config import adapt_to_machine, default_work_dir, load_config, task_of, use_amp
from .distributed import finish_distributed, init_cpu_distributed
from .runner import build_runner, check_checkpoint_fits, find_resume_checkpoint, prepare_config
from .validate import check_cfg_options, check_config_keys, check_data, check_model_builds

__all__ = [
    'adapt_to_machine', 'build_runner', 'check_cfg_options', 'check_checkpoint_fits',
    'check_config_keys', 'check_data', 'check_model_builds', 'default_work_dir',
    'finish_distributed', 'find_resume_checkpoint', 'init_cpu_distributed', 'load_config',
    'run_main', 'prepare_config', 'run_parser', 'task_of', 'use_amp'
]
