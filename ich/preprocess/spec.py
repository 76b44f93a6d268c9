"""What the detector expects to see: grid size, pixel size, slab thickness, windows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class InputSpec(BaseModel):
    """The detector's input, stored with every trained model so inference matches training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(256, ge=32, le=1024, description="Square model plane, pixels.")
    pixel_mm: float = Field(1.0, gt=0.1, le=4.0, description="Model pixel size, mm.")
    slab_mm: float = Field(
        5.0, gt=0.0, le=10.0, description="Thin series are averaged into slabs about this thick."
    )
    context: int = Field(5, ge=1, le=9, description="Contiguous planes per stack (odd).")
    windows: tuple[tuple[float, float], ...] = Field(
        ((40.0, 80.0), (75.0, 215.0), (600.0, 2800.0)),
        description="(level, width) HU windows, one channel each: brain, subdural, bone.",
    )

    @field_validator("context")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(
                f"context must be odd (the predicted plane in the middle), got {value}"
            )
        return value

    @field_validator("windows")
    @classmethod
    def _positive_widths(
        cls, value: tuple[tuple[float, float], ...]
    ) -> tuple[tuple[float, float], ...]:
        if not value or any(width <= 0 for _, width in value):
            raise ValueError("windows need at least one (level, width) with width > 0")
        return value

    @property
    def channels(self) -> int:
        """Input channels of one stack: windows times planes."""
        return len(self.windows) * self.context
