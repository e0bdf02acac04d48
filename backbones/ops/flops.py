"""FLOP handles of this package's custom autograd functions, for fvcore-style counters
(mmengine's ``FlopAnalyzer``): the tracer sees them as ``prim::PythonOp.<Function>`` and would
otherwise count them as zero. A new custom op adds its handle to :data:`FLOP_HANDLES`."""
import math
from typing import Any, Callable, Dict, List


def _shape(value: Any) -> List[int]:
    return list(value.type().sizes())


def dynamic_dwconv_flops(inputs: List[Any], outputs: List[Any]) -> int:
    """A dynamic depth-wise KxK conv: K*K MACs per output element (1 MAC = 1 FLOP). Making the
    weights is counted separately: it is made of ordinary convs."""
    k = _shape(inputs[1])[2]
    return int(math.prod(_shape(outputs[0])) * k * k)


#: ``prim::PythonOp.<autograd Function name>`` -> handle(inputs, outputs) -> FLOPs
FLOP_HANDLES: Dict[str, Callable[[List[Any], List[Any]], int]] = {
    'prim::PythonOp.IDynamicDWConvFunction': dynamic_dwconv_flops,
    'prim::PythonOp.DynamicDWConvFunction': dynamic_dwconv_flops,
}
