"""Model configuration: what a trained model needs to be rebuilt (torch-free, pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ich.preprocess.spec import InputSpec


class Stage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: int = Field(ge=4)
    blocks: int = Field(1, ge=1)


class DetectorConfig(BaseModel):
    """Sizes of the hybrid 3D/2D backbone, the FPN and the Mask R-CNN heads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stem: int = Field(16, ge=4, description="Channels of the stride-2 stem.")
    stages: tuple[Stage, ...] = Field(
        (
            Stage(channels=32),
            Stage(channels=64),
            Stage(channels=128, blocks=2),
            Stage(channels=192),
        ),
        description="C2..C5 at strides 4, 8, 16, 32.",
    )
    depth_stages: int = Field(
        2, ge=1, description="Leading 3D stages; each one's first block turns 2 planes away."
    )
    fpn_channels: int = Field(64, ge=8)
    anchor_sizes: tuple[tuple[int, ...], ...] = ((4, 8), (12, 16), (24, 32), (48, 64), (96, 160))
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    representation: int = Field(256, ge=16, description="Box head MLP width.")
    mask_layers: tuple[int, ...] = (64, 64)
    rpn_pre_nms_train: int = 1000
    rpn_post_nms_train: int = 500
    rpn_pre_nms_test: int = 300
    rpn_post_nms_test: int = 100
    box_batch_per_image: int = 128
    detections_per_plane: int = Field(20, ge=1)
    min_score: float = Field(0.05, ge=0.0, lt=1.0, description="Detections below are dropped.")
    nms_iou: float = Field(0.5, gt=0.0, le=1.0)

    @field_validator("stages")
    @classmethod
    def _four_stages(cls, value: tuple[Stage, ...]) -> tuple[Stage, ...]:
        if len(value) != 4:
            raise ValueError(f"stages lists C2..C5: 4 entries, got {len(value)}")
        return value


class ModelConfig(BaseModel):
    """A model as trained: its input and its network."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: InputSpec = InputSpec()
    detector: DetectorConfig = DetectorConfig()

    def model_post_init(self, _: object) -> None:
        planes_used = 2 * self.detector.depth_stages + 1
        if self.input.context != planes_used:
            raise ValueError(
                f"{self.detector.depth_stages} 3D stages turn {planes_used} planes into one; "
                f"input.context is {self.input.context}"
            )
        if len(self.detector.anchor_sizes) != 5:
            raise ValueError("anchor_sizes lists one tuple per FPN level: P2..P6, 5 in all")
