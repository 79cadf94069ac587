"""The rigid spatial-transformer grid localizer (reference section 2.4).

The module regresses 12 raw numbers from the fused search-grid features; decoding them into
scale, rotation and translation is :func:`inference.geometry.decode_localizer`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from inference.network.config import LocalizerConfig

IDENTITY_BIAS = (3.0, 3.0, 3.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)


class RigidGridLocalizer(nn.Module):
    """``localization`` (Conv3d, BN, MaxPool, ReLU per level) then ``mapping`` (Linear, ReLU,
    Linear to 12).

    Parameters
    ----------
    in_channels : int
        Fused feature channels (2F).
    volume_dim : int
        Grid points per axis of the input volume.
    config : LocalizerConfig
    """

    def __init__(self, in_channels: int, volume_dim: int, config: LocalizerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(config.levels):
            layers += [
                nn.Conv3d(ch, config.hidden, 3, padding=1),
                nn.BatchNorm3d(config.hidden),
                nn.MaxPool3d(2),
                nn.ReLU(inplace=True),
            ]
            ch = config.hidden
        self.localization = nn.Sequential(*layers)
        side = volume_dim // 2**config.levels
        self.mapping = nn.Sequential(
            nn.Linear(config.hidden * side**3, config.mapping_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.mapping_hidden, 12),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Conv N(0, 0.001) with zero bias; last Linear zero weight and identity bias."""
        for m in self.localization:
            if isinstance(m, nn.Conv3d):
                nn.init.normal_(m.weight, 0.0, 0.001)
                nn.init.zeros_(m.bias)
        last = self.mapping[2]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY_BIAS))

    def forward(self, volume: Tensor) -> Tensor:
        """(B, C, D, D, D) fused features -> (B, 12) raw transform parameters."""
        return self.mapping(self.localization(volume).flatten(1))
