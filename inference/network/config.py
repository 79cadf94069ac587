"""One tree of frozen dataclasses describing the TEMPEH network; presets live in ``presets``.

Lengths are millimetres. The tree round-trips through plain dicts (``to_dict`` /
``from_dict``) so that it can be saved as JSON beside every checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FeatureNetConfig:
    """The 2D feature network: a ResNet-34 with five 1x1 skips and nearest up-sampling.

    Attributes
    ----------
    descriptor_dim : int
        Channels of the output feature map (8 in TEMPEH).
    base_width : int
        Channels of ``conv1`` / ``layer1``; ``layer2..4`` use 2x, 4x, 8x (64 in ResNet-34).
    blocks : tuple of int
        BasicBlocks per stage (3, 4, 6, 3 in ResNet-34).
    """

    descriptor_dim: int = 8
    base_width: int = 64
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)


@dataclass(frozen=True)
class V2VConfig:
    """A V2V hourglass (front layers, encoder-decoder, back layers, 1x1 output).

    Attributes
    ----------
    front_channels : tuple of int
        Output channels of ``front_layers.0`` (7^3 Basic) and ``front_layers.1..3`` (Res).
    encoder_channels : tuple of int
        Output channels of ``encoder_res1..L``; level k maps ``c_{k-1} -> c_k`` with
        ``c_0 = front_channels[-1]``.
    pooled_levels : int
        The first ``pooled_levels`` levels max-pool by 2 (and have a ``decoder_upsample``);
        the remaining ones work at the coarsest size and need ``c_k == c_{k-1}``.
    back_channels : tuple of int
        Output channels of ``back_layers.0`` (Res) and ``back_layers.1..`` (1x1 Basic).
    front_kernel : int
        Kernel size of ``front_layers.0`` (7 official; 3 suits tiny local grids).
    """

    front_channels: tuple[int, ...] = (16, 32, 32, 32)
    encoder_channels: tuple[int, ...] = (64, 128, 128, 128, 128)
    pooled_levels: int = 5
    back_channels: tuple[int, ...] = (32, 64, 128)
    front_kernel: int = 7


@dataclass(frozen=True)
class LocalizerConfig:
    """The rigid spatial-transformer grid localizer (reference section 2.4).

    Attributes
    ----------
    hidden : int
        Channels of the two 3^3 convolutions.
    levels : int
        Conv-BN-pool-ReLU levels (each halves the grid).
    mapping_hidden : int
        Width of the hidden linear layer.
    scale_factor : float
        Maximum grid scale relative to the search grid.
    """

    hidden: int = 32
    levels: int = 2
    mapping_hidden: int = 96
    scale_factor: float = 0.4


@dataclass(frozen=True)
class CoarseConfig:
    """The coarse ("global") stage.

    Attributes
    ----------
    feature_net : FeatureNetConfig
    voxel_dim : int
        Grid points per axis of the search and the localized grid.
    voxel_inc : float
        Search-grid spacing, mm.
    origin : tuple of float
        Search-grid centre in the rig frame, mm.
    localizer : LocalizerConfig
    v2v : V2VConfig
    image_resize_factor : int
        Images are resized to ``full // factor`` for this stage.
    heatmap_prior_sigma : float
        0 (official): each vertex's heatmap is the V2V output layer applied to the V2V features.
        > 0: the output layer also sees each grid point's position in the localized grid
        (``o``, in units of half the grid's width, and ``|o|²``), and starts as a Gaussian
        around the template vertex's place in the grid at the localizer's initial scale, of
        this standard deviation in the same units. The heatmaps then start at the template and
        the V2V learns the corrections; the weights stay trainable.
    """

    feature_net: FeatureNetConfig = field(default_factory=FeatureNetConfig)
    voxel_dim: int = 32
    voxel_inc: float = 25.0
    origin: tuple[float, float, float] = (0.0, -50.0, 0.0)
    localizer: LocalizerConfig = field(default_factory=LocalizerConfig)
    v2v: V2VConfig = field(default_factory=V2VConfig)
    image_resize_factor: int = 8
    heatmap_prior_sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.heatmap_prior_sigma < 0:
            raise ValueError(
                f"coarse.heatmap_prior_sigma must be >= 0, got {self.heatmap_prior_sigma}"
            )


SEARCH_KINDS = ("grid", "normal")
"""Refinement search shapes (:attr:`RefineConfig.search`)."""


@dataclass(frozen=True)
class RefineConfig:
    """The refinement ("local") stage.

    Attributes
    ----------
    feature_net : FeatureNetConfig
    voxel_dim : int
        Local grid points per axis around each vertex.
    voxel_inc : float
        Local grid spacing, mm.
    v2v : V2VConfig
    image_resize_factor : int
    embedding_scale : float
        Template positions (mm) times this are the 3 embedding channels (0.01: decimetres).
    render_size : int
        Side of the depth image used for vertex visibility, pixels.
    visibility_eps : float
        Depth tolerance of the visibility test (normalized depth units).
    chunk_vertices : int
        Vertices per local-V2V call, to bound memory.
    centered_grid : bool
        Local grid symmetric about the vertex (:func:`inference.geometry.grid_offsets`); the
        official grid (False) is shifted half a spacing towards −x, −y, −z.
    output_smoothing : int
        Taubin iterations (:func:`inference.geometry.taubin_smooth`) over the template's edges
        applied to the refined mesh at inference (eval mode; training sees the raw output);
        0 as the official code.
    search : str
        ``"grid"``: TEMPEH's local cube of ``voxel_dim³`` points scored by the local V2V.
        ``"normal"``: ``normal_samples`` points ``normal_inc`` mm apart along each coarse
        vertex normal, fused with the stage's RGB images beside the features and scored by 1D
        convolutions (:class:`inference.network.refine.NormalSearchNet`); the vertex moves
        along its normal only, and ``voxel_dim``, ``voxel_inc`` and ``v2v`` are unused.
    normal_samples, normal_inc : int, float
        Points per normal line and their spacing, mm (``"normal"`` search; centred on the
        vertex, so 9 × 2 mm searches ±8 mm).
    normal_hidden : int
        Channels of the normal-search convolutions.
    logit_smoothing : int
        Neighbour-mean passes over the mesh applied to the normal-search scores before the
        soft-argmax (train and test): neighbours vote on where the surface is.
    """

    feature_net: FeatureNetConfig = field(default_factory=FeatureNetConfig)
    voxel_dim: int = 8
    voxel_inc: float = 2.0
    v2v: V2VConfig = field(
        default_factory=lambda: V2VConfig(
            front_channels=(16, 32, 32, 32),
            encoder_channels=(64, 128, 128),
            pooled_levels=2,
            back_channels=(32, 32, 32),
        )
    )
    image_resize_factor: int = 4
    embedding_scale: float = 0.01
    render_size: int = 200
    visibility_eps: float = 0.003
    chunk_vertices: int = 1024
    centered_grid: bool = False
    output_smoothing: int = 0
    search: str = "grid"
    normal_samples: int = 9
    normal_inc: float = 2.0
    normal_hidden: int = 32
    logit_smoothing: int = 0

    def __post_init__(self) -> None:
        if self.search not in SEARCH_KINDS:
            raise ValueError(f"refine.search must be one of {SEARCH_KINDS}, got {self.search!r}")
        if self.normal_samples < 2 or self.normal_inc <= 0 or self.normal_hidden < 1:
            raise ValueError(
                "refine.normal_samples must be >= 2, normal_inc > 0 and normal_hidden >= 1; got "
                f"{self.normal_samples}, {self.normal_inc}, {self.normal_hidden}"
            )
        if self.logit_smoothing < 0:
            raise ValueError(f"refine.logit_smoothing must be >= 0, got {self.logit_smoothing}")


@dataclass(frozen=True)
class ModelConfig:
    """The whole network.

    Attributes
    ----------
    coarse : CoarseConfig
    refine : RefineConfig
    compat : bool
        Reproduce the official quirks (reference section 10), e.g. the 0.5 weight of occluded
        views in the refinement fusion. Off by default.
    template : str
        Name of the head template whose vertex count sizes the coarse output layer.
    input_size : tuple of int or None
        (H, W) of the calibrated cameras the network was trained with. When set, each stage is
        fed ``input_size // factor`` images whatever the rig's resolution (a rig recorded at
        640×480 gives the network the image sizes it learned on); ``None`` divides the rig's
        own size by the factors, as the official code does.
    """

    coarse: CoarseConfig = field(default_factory=CoarseConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    compat: bool = False
    template: str = "flame"
    input_size: tuple[int, int] | None = None


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config dataclass of type ``cls`` from :func:`to_dict` output.

    Raises
    ------
    ValueError
        If ``data`` holds a key that ``cls`` does not have.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = from_dict(type(default), value)
        elif isinstance(default, tuple) or (default is None and isinstance(value, list)):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
