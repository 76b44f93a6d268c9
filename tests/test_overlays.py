"""Overlays: the CT in a brain window with reported blood coloured by class, on its planes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.image import imread

from ich.overlays import write_overlays
from ich.quantify import MeasurementGrid, exam_result, instances_from_labels
from ich.schema import HemorrhageClass, OperatingPoint


def test_overlays_colour_reported_blood_on_the_planes_that_hold_it(tmp_path: Path) -> None:
    hu = np.full((6, 96, 96), 30, dtype=np.int16)
    label = np.zeros(hu.shape, dtype=np.uint8)
    label[2:4, 40:50, 30:45] = HemorrhageClass.IPH.label
    instances = instances_from_labels(label, np.where(label > 0, 0.9, 0.0))
    geometry = MeasurementGrid((6, 96, 96), (5.0, 0.5, 0.5), np.eye(4))
    point = OperatingPoint(thresholds={c: 0.5 for c in HemorrhageClass}, any_ich=0.5, source="t")
    result = exam_result("1.2", "1.2.3", instances, geometry, point)
    written = write_overlays(hu, label, result, tmp_path)
    assert [p.name for p in written] == ["plane_003.png", "plane_004.png"]
    image = imread(written[0])[..., :3]
    assert image.shape[:2] == (96, 96)
    inside, outside = image[45, 37], image[10, 10]
    assert inside[0] > inside[1] + 0.2 and np.allclose(outside[0], outside[1], atol=0.02)
