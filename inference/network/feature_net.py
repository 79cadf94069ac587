"""The 2D feature network: ResNet-34 with five 1x1 skips and nearest top-down fusion.

Key names follow torchvision's ResNet under ``model.resnet34_32s`` and ``model.skip{1..5}``
(reference section 2.1); no ImageNet weights are downloaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor, nn

from inference.network.config import FeatureNetConfig


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (``conv1, bn1, conv2, bn2, downsample.{0,1}``)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """(N, Cin, H, W) -> (N, C, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with BasicBlocks and torchvision attribute names, without ``fc``.

    Parameters
    ----------
    base_width : int
        Channels of ``layer1`` (64 for ResNet-34); later stages double it.
    blocks : tuple of int
        Blocks per stage (3, 4, 6, 3 for ResNet-34).
    """

    def __init__(self, base_width: int = 64, blocks: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        w = base_width
        self.widths = (w, w, 2 * w, 4 * w, 8 * w)
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = w
        for i, n in enumerate(blocks):
            ch = w * 2**i
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(in_ch, ch, stride)] + [BasicBlock(ch, ch, 1) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            in_ch = ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class Resnet34Skip(nn.Module):
    """``resnet34_32s`` plus ``skip1..skip5`` 1x1 convs (with bias) to ``descriptor_dim``."""

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        self.resnet34_32s = ResNet(config.base_width, config.blocks)
        for i, ch in enumerate(self.resnet34_32s.widths):
            self.add_module(f"skip{i + 1}", nn.Conv2d(ch, config.descriptor_dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) normalized images -> (N, F, H, W) features, no activation."""
        r = self.resnet34_32s
        h = r.relu(r.bn1(r.conv1(x)))
        skips = [self.skip1(h)]
        h = r.maxpool(h)
        for i in range(1, 5):
            h = getattr(r, f"layer{i}")(h)
            skips.append(getattr(self, f"skip{i + 1}")(h))
        top = skips[4]
        for s in reversed(skips[:4]):
            top = s + F.interpolate(top, size=s.shape[-2:], mode="nearest")
        return F.interpolate(top, size=x.shape[-2:], mode="nearest")


class FeatureNet(nn.Module):
    """Holds :class:`Resnet34Skip` as ``model`` so keys read ``feature_net.model.*``."""

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        self.model = Resnet34Skip(config)

    def forward(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) ImageNet-normalized images -> (N, F, H, W) feature maps.

        On CPU the images go in channels-last (NHWC): oneDNN's convolutions are faster on it
        (lite refinement, 16 views of 200x150: 46 -> 29 ms at inference, 126 -> 106 ms with
        the backward pass). The maps come out channels-last too; values are the same to
        1e-5. CUDA keeps the layout it is given (not measured there).
        """
        if images.device.type == "cpu":
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)
