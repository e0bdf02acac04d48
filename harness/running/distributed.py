"""Process groups on CPU-only machines (gloo), from torchrun's or Slurm's environment."""
import os

import torch

from ..errors import ToolError

#: seconds a collective may wait for a peer before the process group gives up (a rank that
#: hangs instead of dying; torchrun ends the others when one dies)
DIST_TIMEOUT = 1800


def init_cpu_distributed(launcher: str, timeout: float = DIST_TIMEOUT) -> bool:
    """mmengine's init_dist assumes CUDA (it calls ``torch.cuda.set_device``); on a CPU-only
    machine start the gloo process group ourselves, before the runner is built, from torchrun's
    environment (``pytorch``) or Slurm's (``slurm``). Returns whether the run is distributed."""
    if launcher == 'none':
        return False
    import datetime

    import torch.distributed as dist
    if torch.cuda.is_available() or dist.is_initialized():
        return True
    if launcher == 'slurm':
        _slurm_env()
    elif launcher != 'pytorch':
        raise ToolError(f'launcher {launcher!r} needs CUDA; on the CPU use tools/dist_train.sh '
                        '(torchrun, gloo) or tools/slurm_train.sh')
    missing = [
        k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ
    ]
    if missing:
        raise ToolError(f'--launcher {launcher} but {", ".join(missing)} not set: start it '
                        'with tools/dist_train.sh (torchrun) or tools/slurm_train.sh')
    dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=timeout))
    return True


def finish_distributed() -> None:
    """End the process group cleanly once the run is over: left to interpreter shutdown, gloo's
    threads can abort a rank ('terminate called without an active exception', SIGABRT), and
    torchrun then reports a finished job as failed."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _slurm_env() -> None:
    """The torchrun variables from Slurm's, as mmengine's ``_init_dist_slurm`` sets them."""
    import subprocess
    env = os.environ
    try:
        env['RANK'], env['WORLD_SIZE'] = env['SLURM_PROCID'], env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
        if 'MASTER_ADDR' not in env:
            env['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1').strip()
    except KeyError as exc:
        raise ToolError(f'--launcher slurm outside a Slurm job step ({exc.args[0]} not set)')
    env.setdefault('MASTER_PORT', '29500')
