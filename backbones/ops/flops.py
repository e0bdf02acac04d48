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


def idynamic_fused_flops(inputs: List[Any], outputs: List[Any]) -> int:
    """I-Dynamic with its generator's last 1x1 conv inside (inputs x, hidden (B, R, H, W),
    gen_weight (G, K, K, R)[, gen_bias]): K*K MACs per output element plus the 1x1 conv's
    B*H*W*G*K*K*R MACs, which the unfused model's counter counts as a conv (bias not counted)."""
    b, r, h, w = _shape(inputs[1])
    g, k, _, _ = _shape(inputs[2])
    return int(math.prod(_shape(outputs[0])) * k * k + b * h * w * g * k * k * r)


#: ``prim::PythonOp.<autograd Function name>`` -> handle(inputs, outputs) -> FLOPs
FLOP_HANDLES: Dict[str, Callable[[List[Any], List[Any]], int]] = {
    'prim::PythonOp.IDynamicDWConvFunction': dynamic_dwconv_flops,
    'prim::PythonOp.IDynamicFusedFunction': idynamic_fused_flops,
    'prim::PythonOp.DynamicDWConvFunction': dynamic_dwconv_flops,
}
