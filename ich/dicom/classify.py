"""Small classifiers over header values: orientation, reconstruction kernel, contrast.

Vendors name kernels freely, so the kernel classifier is a set of documented heuristics; it
only ranks series (soft tissue before bone), it never excludes one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from enum import StrEnum

import numpy as np


class KernelClass(StrEnum):
    SOFT = "soft"
    SHARP = "sharp"
    UNKNOWN = "unknown"


_SHARP_WORDS = re.compile(r"BONE|LUNG|EDGE|SHARP|DETAIL|HIGH|ULTRA|IAC|INNER ?EAR|TEMPORAL")
_SOFT_WORDS = re.compile(r"SOFT|STANDARD|STD|BRAIN|HEAD|SMOOTH|NEURO|POST ?FOSSA|CEREBRUM")
# Siemens H30s, Hr38, J40s, Br64, Qr40, Hc44 ...: two-digit sharpness, >= 60 is a bone kernel.
_SIEMENS = re.compile(r"^[A-Z][a-z]?(\d{2})[a-z]?\b")
# Canon/Toshiba FC21, FC26 (brain) ... FC30, FC35 (bone), FC5x-FC8x (lung).
_CANON = re.compile(r"^FC(\d{2})$")
# Philips brain kernels.
_PHILIPS_SOFT = {"UA", "UB", "UC", "EA", "EB", "EC"}


def classify_kernel(kernel: str, description: str = "") -> KernelClass:
    """Soft-tissue (brain) versus sharp (bone/lung) reconstruction, from kernel and description."""
    name = kernel.strip()
    upper = name.upper()
    if upper:
        if _SHARP_WORDS.search(upper):
            return KernelClass.SHARP
        if _SOFT_WORDS.search(upper) or upper in _PHILIPS_SOFT:
            return KernelClass.SOFT
        if match := _SIEMENS.match(name):
            return KernelClass.SHARP if int(match.group(1)) >= 60 else KernelClass.SOFT
        if match := _CANON.match(upper):
            return KernelClass.SOFT if int(match.group(1)) < 30 else KernelClass.SHARP
    desc = description.upper()
    if re.search(r"\bBONE\b|\bLUNG\b", desc):
        return KernelClass.SHARP
    if re.search(r"\bBRAIN\b|\bSOFT\b|\bSTD\b|\bSTANDARD\b", desc):
        return KernelClass.SOFT
    return KernelClass.UNKNOWN


_NO_AGENT = {"", "NONE", "NO", "N", "0", "-", "NIL", "NON", "NOT APPLICABLE"}
_CONTRAST_DESC = re.compile(
    r"\bCTA\b|ANGIO|PERFUSION|C\+|\bPOST\W*CON|WITH\W+CON|\bW\W*CON|\+C\b|\bCE\b|VENOGRAM"
)
_NON_CONTRAST_DESC = re.compile(r"\bNON\b|NON-?CON|\bW/?O\b|WITHOUT|PLAIN|\bNC\b|PRE\W*CON")


def contrast_evidence(agent: str, route: str, description: str) -> str | None:
    """Why a series looks contrast-enhanced, or None when nothing says so."""
    if agent.strip().upper() not in _NO_AGENT:
        return f"ContrastBolusAgent is {agent.strip()!r}"
    if route.strip().upper() not in _NO_AGENT:
        return f"ContrastBolusRoute is {route.strip()!r}"
    desc = description.upper()
    if _CONTRAST_DESC.search(desc) and not _NON_CONTRAST_DESC.search(desc):
        return f"series description {description!r} suggests contrast"
    return None


def plane_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal of an image plane from ImageOrientationPatient (row x column)."""
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def axial_tilt_deg(orientation: Sequence[float]) -> float:
    """Angle between the image plane's normal and the patient's head-foot axis."""
    return math.degrees(math.acos(min(1.0, abs(float(plane_normal(orientation)[2])))))


def orientation_label(orientation: Sequence[float] | None) -> str:
    """AXIAL, CORONAL or SAGITTAL by the dominant axis of the normal (UNKNOWN without tags)."""
    if orientation is None:
        return "UNKNOWN"
    axis = int(np.argmax(np.abs(plane_normal(orientation))))
    return ("SAGITTAL", "CORONAL", "AXIAL")[axis]
