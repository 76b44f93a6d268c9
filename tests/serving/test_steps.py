"""The python steps' work without Triton: limits checked before memory is spent."""

from __future__ import annotations

from pathlib import Path

import pytest

from ich.pipeline import SeriesTooLongError
from ich.preprocess import InputSpec
from ich.serving.client import study_files
from ich.serving.steps import preprocess


def test_a_series_longer_than_a_request_may_carry_is_refused(small_synth: Path) -> None:
    files = study_files(next(small_synth.glob("case_*")) / "dicom")
    done = preprocess(files, InputSpec(), block_planes=16, max_blocks=32)
    assert done.blocks.shape[0] >= 1 and b'"series_uid"' in done.context
    with pytest.raises(SeriesTooLongError, match="at most 2 are analysed"):
        preprocess(files, InputSpec(), block_planes=1, max_blocks=2)
