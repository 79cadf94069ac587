"""The TEMPEH network: config tree, presets, both stages and the official checkpoint layout."""

from inference.network.coarse import CoarseOutput, CoarseStage
from inference.network.config import (
    CoarseConfig,
    FeatureNetConfig,
    LocalizerConfig,
    ModelConfig,
    RefineConfig,
    V2VConfig,
    from_dict,
    to_dict,
)
from inference.network.model import MultiViewBatch, ReconstructionOutput, TempehModel
from inference.network.official import export_official_layout, import_official
from inference.network.presets import PRESETS, preset
from inference.network.refine import RefineStage

__all__ = [
    "PRESETS",
    "CoarseConfig",
    "CoarseOutput",
    "CoarseStage",
    "FeatureNetConfig",
    "LocalizerConfig",
    "ModelConfig",
    "MultiViewBatch",
    "ReconstructionOutput",
    "RefineConfig",
    "RefineStage",
    "TempehModel",
    "V2VConfig",
    "export_official_layout",
    "from_dict",
    "import_official",
    "preset",
    "to_dict",
]
