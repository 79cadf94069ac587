"""Named network presets as data: ``tempeh`` (official sizes) and ``lite`` (real-time CPU)."""

from __future__ import annotations

from inference.network.config import (
    CoarseConfig,
    FeatureNetConfig,
    LocalizerConfig,
    ModelConfig,
    RefineConfig,
    V2VConfig,
)

TEMPEH = ModelConfig()

LITE = ModelConfig(
    coarse=CoarseConfig(
        feature_net=FeatureNetConfig(descriptor_dim=8, base_width=16),
        voxel_dim=16,
        voxel_inc=50.0,
        # the procedural head with its neck is 330 mm tall: at TEMPEH's 0.4 the largest localized
        # grid (15 x 20 mm) squashed it by a tenth; 0.5 spans 375 mm
        localizer=LocalizerConfig(hidden=16, levels=2, mapping_hidden=64, scale_factor=0.5),
        v2v=V2VConfig(
            front_channels=(8, 16, 16, 16),
            encoder_channels=(32, 32, 32, 32),
            pooled_levels=4,
            back_channels=(16, 32, 32),
        ),
        image_resize_factor=16,
        # each heatmap starts as a Gaussian (1.5 grid spacings wide) around its template vertex
        # and the V2V learns the corrections (2000 steps with grid rotations up to 45°, 48 test
        # frames: coarse v2v 9.97 -> 8.31 mm; with any grid rotation the prior fights the
        # localizer and trains far worse)
        heatmap_prior_sigma=0.2,
    ),
    refine=RefineConfig(
        feature_net=FeatureNetConfig(descriptor_dim=8, base_width=16),
        voxel_dim=2,
        voxel_inc=12.0,
        v2v=V2VConfig(
            front_channels=(8, 8),
            encoder_channels=(16,),
            pooled_levels=1,
            back_channels=(8,),
            front_kernel=3,
        ),
        image_resize_factor=8,
        render_size=64,
        centered_grid=True,
        # a line of 9 samples 2 mm apart along each coarse normal, not a 2^3 cube 12 mm wide:
        # on 200x150 images (2.5 mm/px) the cube could not find the surface (model card pull-in)
        search="normal",
        normal_samples=9,
        normal_inc=2.0,
        logit_smoothing=3,
        # soft-argmax answers leave vertex noise (roughness 1.2 mm, registrations 0.45 mm)
        output_smoothing=10,
    ),
    template="procedural",
)

PRESETS: dict[str, ModelConfig] = {"tempeh": TEMPEH, "lite": LITE}


def preset(name: str) -> ModelConfig:
    """The preset called ``name``.

    Raises
    ------
    KeyError
        If there is no such preset; the message lists the known ones.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown network preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
