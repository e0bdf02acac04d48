from dataclasses import asdict, dataclass
from typing import Dict


@dataclass(frozen=True)
class BackboneProperties:
    """The connectivity properties the paper compares (its Table 1), recorded on each backbone
    class so that tools print the property table from code rather than from prose."""
    sparse_connectivity: bool
    weight_sharing_across_channels: bool
    weight_sharing_across_positions: bool
    dynamic_weights: bool

    def as_dict(self) -> Dict[str, bool]:
        return asdict(self)
