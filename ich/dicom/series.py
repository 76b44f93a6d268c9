"""Grouping of image headers into studies and series, and each series' main stack.

A series occasionally mixes geometries (a localizer filed under the axial series, a second
reconstruction matrix). Its main stack is the largest set of images sharing orientation,
matrix and pixel spacing; the rest are set aside with a warning rather than corrupting the grid.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ich.dicom.headers import InstanceHeader, SkipKind, Skipped
from ich.schema import IngestionWarning


@dataclass(frozen=True)
class Series:
    """The images of one SeriesInstanceUID: the main stack and what was set aside."""

    study_uid: str
    series_uid: str
    stack: tuple[InstanceHeader, ...]
    set_aside: tuple[InstanceHeader, ...] = ()
    warnings: tuple[IngestionWarning, ...] = field(default=())

    @property
    def first(self) -> InstanceHeader:
        return self.stack[0]

    @property
    def images(self) -> int:
        return len(self.stack) + len(self.set_aside)


def _geometry_key(header: InstanceHeader) -> tuple[object, ...]:
    orientation = tuple(round(v, 3) for v in header.orientation) if header.orientation else None
    spacing = tuple(round(v, 4) for v in header.pixel_spacing) if header.pixel_spacing else None
    return orientation, header.rows, header.columns, spacing, header.samples_per_pixel


def _split_stack(
    headers: list[InstanceHeader],
) -> tuple[list[InstanceHeader], list[InstanceHeader]]:
    groups: dict[tuple[object, ...], list[InstanceHeader]] = defaultdict(list)
    for header in headers:
        groups[_geometry_key(header)].append(header)
    ranked = sorted(groups.values(), key=len, reverse=True)
    return ranked[0], [h for group in ranked[1:] for h in group]


def _describe_set_aside(main: list[InstanceHeader], rest: list[InstanceHeader]) -> IngestionWarning:
    ref = main[0]
    kinds = Counter()
    for header in rest:
        if (header.rows, header.columns) != (ref.rows, ref.columns):
            kinds[f"matrix {header.rows}x{header.columns}"] += 1
        elif header.orientation != ref.orientation:
            kinds["another orientation"] += 1
        else:
            kinds["another pixel spacing or colour layout"] += 1
    detail = ", ".join(f"{n} with {kind}" for kind, n in kinds.items())
    return IngestionWarning(
        code="mixed_geometry",
        message=f"{len(rest)} image(s) of this series differ from its {len(main)}-image main "
        f"stack ({ref.rows}x{ref.columns}) and were not used: {detail}.",
    )


def group_series(headers: Iterable[InstanceHeader]) -> tuple[list[Series], list[Skipped]]:
    """Series in input order of first appearance; repeated SOP instances become skip notes."""
    by_series: dict[tuple[str, str], list[InstanceHeader]] = {}
    seen: dict[tuple[str, int | None], str] = {}
    skipped: list[Skipped] = []
    for header in headers:
        key = (header.sop_instance_uid, header.frame)
        if header.sop_instance_uid and key in seen:
            skipped.append(
                Skipped(header.name, SkipKind.REPEATED, f"same SOP instance as {seen[key]}")
            )
            continue
        if header.sop_instance_uid:
            seen[key] = header.name
        by_series.setdefault((header.study_uid, header.series_uid), []).append(header)

    series: list[Series] = []
    for (study_uid, series_uid), members in by_series.items():
        main, rest = _split_stack(members)
        warnings = (_describe_set_aside(main, rest),) if rest else ()
        series.append(Series(study_uid, series_uid, tuple(main), tuple(rest), warnings))
    return series, skipped
