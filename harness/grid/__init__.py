"""The benchmark grid on a cluster: the DAG of runs (:mod:`.plan`), its submission to Slurm
(:mod:`.submit`) or this machine (:mod:`.local`), and the state of each run (:mod:`.state`),
read from Slurm and the work dirs only. ``tools/grid.py`` is the command line."""
from .launch import LaunchOptions, check_cfg_options, leaderboard_command, train_args
from .local import run_local
from .plan import (Run, Schedule, build_plan, calibration_runs, choose_settings, format_plan,
                   parent_setting, read_schedule)
from .state import RunState, collect, counts, format_states, last_error_line
from .submit import job_script, submit_slurm, wait

__all__ = [
    'LaunchOptions', 'check_cfg_options', 'leaderboard_command', 'train_args', 'run_local', 'Run',
    'Schedule', 'build_plan', 'calibration_runs', 'choose_settings', 'format_plan',
    'parent_setting', 'read_schedule', 'RunState', 'collect', 'counts', 'format_states',
    'last_error_line', 'job_script', 'submit_slurm', 'wait'
]
