"""The V2V hourglass used by both stages, with the official submodule names.

Names and ``Sequential`` indices follow the official checkpoints: ``front_layers.0.block.{0,1}``,
``res_branch.{0,1,3,4}``, ``skip_con.{0,1}``, ``encoder_decoder.{encoder_res,mid_res,decoder_res,
decoder_upsample,skip_res}k``, ``back_layers``, ``output_layer`` (reference sections 2.5, 3.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor, nn

from inference.network.config import V2VConfig

DENSE_MAX_VOXELS = 8
"""Grids of at most this many voxels (a small refinement cube's 2³ and its pooled 1³, TEMPEH's
innermost levels) are convolved as one matrix product at inference: PyTorch's 3D convolution
on CPU has no fast path for them (a 2³ refinement V2V on 5512 grids: 17 ms as convolutions,
7 ms as products)."""


class _SmallGridsAsProducts:
    """Mixin for the 3D (transposed) convolutions: without gradients, a grid of at most
    :data:`DENSE_MAX_VOXELS` voxels is convolved as one matrix product.

    The matrix is the layer (without bias) applied to every unit input, C·S of them for C
    channels and S voxels, so it holds the padding, stride and transposition exactly. It is
    kept until the weights change (their version or storage) or the grid size does.
    """

    weight: Tensor
    bias: Tensor | None
    _dense: tuple[tuple, Tensor, torch.Size] | None = None

    def _linear(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """(N, Cin, D, D, D) -> (N, Cout, D', D', D')."""
        out = self._small_grid(x)
        return super().forward(x) if out is None else out  # the torch layer's convolution

    def _small_grid(self, x: Tensor) -> Tensor | None:
        """The layer's output by the matrix product, or None when the layer must convolve."""
        size = x.shape[2:]
        if torch.is_grad_enabled() or size.numel() > DENSE_MAX_VOXELS:
            return None
        w = self.weight
        key = (tuple(size), w.device, w.dtype, w.data_ptr(), w._version)
        if self._dense is None or self._dense[0] != key:
            c = x.shape[1]
            # a plain tensor (not an inference one) in the weights' precision; an autocast
            # region casts it for the product like any other operand
            with (
                torch.inference_mode(False),
                torch.no_grad(),
                torch.autocast(w.device.type, enabled=False),
            ):
                basis = torch.eye(c * size.numel(), dtype=w.dtype, device=w.device)
                columns = self._linear(basis.view(-1, c, *size))
            self._dense = (key, columns.reshape(len(columns), -1), columns.shape[1:])
        _, matrix, out_shape = self._dense
        out = (x.reshape(len(x), -1) @ matrix).view(len(x), *out_shape)
        if self.bias is not None:
            out = out + self.bias.view(-1, 1, 1, 1).to(out.dtype)
        return out


class GridConv3d(_SmallGridsAsProducts, nn.Conv3d):
    """``nn.Conv3d``; small grids at inference as a matrix product."""

    def _linear(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight, None)


class GridConvTranspose3d(_SmallGridsAsProducts, nn.ConvTranspose3d):
    """``nn.ConvTranspose3d``; small grids at inference as a matrix product."""

    def _linear(self, x: Tensor) -> Tensor:
        return F.conv_transpose3d(
            x,
            self.weight,
            None,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )


class Basic3DBlock(nn.Module):
    """Conv3d (k, padding k//2) -> BatchNorm3d -> ReLU, as ``block.{0,1,2}``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            GridConv3d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, Cin, D, D, D) -> (N, Cout, D, D, D)."""
        return self.block(x)


class Res3DBlock(nn.Module):
    """Two 3^3 conv-BN (``res_branch.{0,1,3,4}``) plus identity or 1^3 conv-BN skip; ReLU of sum."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.res_branch = nn.Sequential(
            GridConv3d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            GridConv3d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm3d(out_channels),
        )
        if in_channels == out_channels:
            self.skip_con: nn.Module = nn.Sequential()
        else:
            self.skip_con = nn.Sequential(
                GridConv3d(in_channels, out_channels, 1),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """(N, Cin, D, D, D) -> (N, Cout, D, D, D)."""
        return F.relu(self.res_branch(x) + self.skip_con(x), inplace=True)


class Upsample3DBlock(nn.Module):
    """ConvTranspose3d (k=2, s=2) -> BatchNorm3d -> ReLU, as ``block.{0,1,2}``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            GridConvTranspose3d(in_channels, out_channels, 2, stride=2),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, Cin, D, D, D) -> (N, Cout, 2D, 2D, 2D)."""
        return self.block(x)


class EncoderDecoder(nn.Module):
    """The hourglass: per level a skip Res block, optional max-pool, an encoder Res block; then
    the mirror with decoder Res blocks, transposed-conv up-sampling and skip additions.

    Registration order (encoder, mid, decoder, upsample, skip) matches the official state dict.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], pooled_levels: int) -> None:
        super().__init__()
        widths = (in_channels, *channels)
        self.levels = len(channels)
        self.pooled_levels = pooled_levels
        for k in range(1, self.levels + 1):
            if k > pooled_levels and widths[k] != widths[k - 1]:
                raise ValueError(
                    f"V2V level {k} is not pooled, so it needs equal widths; got "
                    f"{widths[k - 1]} -> {widths[k]}"
                )
            self.add_module(f"encoder_res{k}", Res3DBlock(widths[k - 1], widths[k]))
        self.mid_res = Res3DBlock(widths[-1], widths[-1])
        for k in range(self.levels, 0, -1):
            self.add_module(f"decoder_res{k}", Res3DBlock(widths[k], widths[k]))
        for k in range(pooled_levels, 0, -1):
            self.add_module(f"decoder_upsample{k}", Upsample3DBlock(widths[k], widths[k - 1]))
        for k in range(1, self.levels + 1):
            self.add_module(f"skip_res{k}", Res3DBlock(widths[k - 1], widths[k - 1]))

    def forward(self, x: Tensor) -> Tensor:
        """(N, C0, D, D, D) -> (N, C0, D, D, D); D must be divisible by 2**pooled_levels."""
        skips = []
        for k in range(1, self.levels + 1):
            skips.append(getattr(self, f"skip_res{k}")(x))
            if k <= self.pooled_levels:
                x = F.max_pool3d(x, kernel_size=2, stride=2)
            x = getattr(self, f"encoder_res{k}")(x)
        x = self.mid_res(x)
        for k in range(self.levels, 0, -1):
            x = getattr(self, f"decoder_res{k}")(x)
            if k <= self.pooled_levels:
                x = getattr(self, f"decoder_upsample{k}")(x)
            x = x + skips[k - 1]
        return x


class V2VModel(nn.Module):
    """V2V network: ``front_layers``, ``encoder_decoder``, ``back_layers``, ``output_layer``.

    Parameters
    ----------
    in_channels : int
        Input channels (16 coarse: mean+var of 8; 19 refinement: + 3 embedding).
    out_channels : int
        Output channels (one heatmap per vertex for the coarse stage, 1 for refinement).
    config : V2VConfig
    extra_output_inputs : int
        Channels the caller adds to the features before the output layer (the coarse stage's
        grid positions, :attr:`CoarseConfig.heatmap_prior_sigma`); ``forward`` then cannot be
        used, only ``features``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        config: V2VConfig,
        extra_output_inputs: int = 0,
    ) -> None:
        super().__init__()
        f = config.front_channels
        b = config.back_channels
        front: list[nn.Module] = [Basic3DBlock(in_channels, f[0], config.front_kernel)]
        front += [Res3DBlock(f[i - 1], f[i]) for i in range(1, len(f))]
        self.front_layers = nn.Sequential(*front)
        self.encoder_decoder = EncoderDecoder(f[-1], config.encoder_channels, config.pooled_levels)
        back: list[nn.Module] = [Res3DBlock(f[-1], b[0])]
        back += [Basic3DBlock(b[i - 1], b[i], 1) for i in range(1, len(b))]
        self.back_layers = nn.Sequential(*back)
        self.extra_output_inputs = extra_output_inputs
        self.output_layer = GridConv3d(b[-1] + extra_output_inputs, out_channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal conv and transposed-conv weights, zero biases (reference 2.5)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(N, Cin, D, D, D) -> (N, Cout, D, D, D) logits."""
        if self.extra_output_inputs:
            raise RuntimeError("this V2V's output layer takes extra inputs: call features()")
        return self.output_layer(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """(N, Cin, D, D, D) -> the output layer's (N, C, D, D, D) input."""
        return self.back_layers(self.encoder_decoder(self.front_layers(x)))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["V2VModel", "count_parameters"]
