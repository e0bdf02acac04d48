"""The connectivity properties that the paper compares (its Table 1)."""
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

#: The paper's Table 1, a row per kind of spatial mixer: (sparse connectivity, weight sharing
#: across channels, weight sharing across positions, dynamic weights).
# yapf: disable
TABLE_1: Dict[str, Tuple[bool, bool, bool, bool]] = {
    'local attention':                  (True, True, False, True),
    'depth-wise convolution':           (True, False, True, False),
    'dynamic depth-wise convolution':   (True, False, True, True),
    'inhomogeneous dynamic depth-wise convolution': (True, True, False, True),
}
# yapf: enable


@dataclass(frozen=True)
class BackboneProperties:
    """The connectivity properties the paper compares (its Table 1), recorded on each backbone
    class so that tools print the property table from code rather than from prose."""
    sparse_connectivity: bool
    weight_sharing_across_channels: bool
    weight_sharing_across_positions: bool
    dynamic_weights: bool

    @classmethod
    def of(cls, mixer: str) -> 'BackboneProperties':
        """The properties of a row of :data:`TABLE_1`, e.g. ``'depth-wise convolution'``."""
        if mixer not in TABLE_1:
            raise KeyError(f'no row {mixer!r} in the paper\'s Table 1; rows: {", ".join(TABLE_1)}')
        return cls(*TABLE_1[mixer])

    def as_dict(self) -> Dict[str, bool]:
        return asdict(self)
