"""Size strata exactly as the paper's Table 1 defines them."""

from __future__ import annotations

from ich.schema import SizeStratum

PUNCTATE_BELOW_ML = 0.01
SMALL_UP_TO_ML = 5.0
MEDIUM_UP_TO_ML = 25.0


def stratum_of(volume_ml: float) -> SizeStratum:
    """Punctate < 0.01 mL, small 0.01-5.0 mL, medium 5-25 mL, large > 25 mL.

    Table 1 writes the ranges as closed on both ends; a value on a boundary (5.0 or 25) goes to
    the smaller stratum, since "large" is defined as strictly over 25 mL.
    """
    if volume_ml < PUNCTATE_BELOW_ML:
        return SizeStratum.PUNCTATE
    if volume_ml <= SMALL_UP_TO_ML:
        return SizeStratum.SMALL
    if volume_ml <= MEDIUM_UP_TO_ML:
        return SizeStratum.MEDIUM
    return SizeStratum.LARGE
