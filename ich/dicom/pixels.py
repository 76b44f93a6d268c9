"""Pixel decoding to Hounsfield units, and the in-plane resampling of gantry-tilt correction.

Compressed transfer syntaxes (JPEG Lossless, JPEG-LS, JPEG 2000, RLE) are decoded by pydicom
with the pylibjpeg plugins. Values are converted with RescaleSlope/Intercept; padding pixels
(PixelPaddingValue, outside the reconstruction circle) become air.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.uid import UID

from ich.dicom.errors import PixelDataError
from ich.dicom.headers import InstanceHeader, number

AIR_HU = -1024
MAX_HU = 3071


def _as_stored(value: int, stored: np.ndarray) -> int:
    """A padding value read as SS or US, reinterpreted in the pixel data's own signedness."""
    bits = stored.dtype.itemsize * 8
    wrapped = int(value) % (1 << bits)
    if stored.dtype.kind == "i" and wrapped >= 1 << (bits - 1):
        wrapped -= 1 << bits
    return wrapped


def _padding_mask(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray | None:
    """Pixels at PixelPaddingValue (up to PixelPaddingRangeLimit); None if no usable padding."""
    try:
        value = _as_stored(ds.get("PixelPaddingValue"), stored)
        limit = ds.get("PixelPaddingRangeLimit")
        if limit is None or limit == "":
            return stored == value
        low, high = sorted((value, _as_stored(limit, stored)))
    except (TypeError, ValueError):  # absent, empty or not a number: nothing is padding
        return None
    return (stored >= low) & (stored <= high)


def decode_frames(headers: Sequence[InstanceHeader]) -> list[np.ndarray]:
    """Slices of one file in HU (float32, rows x columns), padding set to air, clipped to
    [-1024, 3071]. The file is read and decoded once, however many of its frames are asked for.

    Raises:
        PixelDataError: the pixel data is missing, truncated or in a syntax with no decoder.
    """
    first = headers[0]
    syntax = UID(first.transfer_syntax_uid)
    try:
        with first.source.open() as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fh, force=True)
            stored = ds.pixel_array
    except Exception as exc:  # decoders raise a variety of types
        raise PixelDataError(
            f"{first.source.name}: cannot decode its pixel data ({syntax.name}): {exc}. Re-send "
            "the file, or export the series uncompressed."
        ) from exc
    if first.frame is not None and stored.ndim == 2:  # a multi-frame instance of one frame
        stored = stored[None]
    expected = (first.rows, first.columns)
    if stored.shape[-2:] != expected or stored.ndim != (2 if first.frame is None else 3):
        raise PixelDataError(
            f"{first.source.name}: pixel data has shape {stored.shape}, expected "
            f"{first.number_of_frames} greyscale frame(s) of {first.rows}x{first.columns}."
        )
    out = []
    for header in headers:
        frame = stored if header.frame is None else stored[header.frame]
        slope, intercept = header.rescale or (
            number(ds, "RescaleSlope", float) or 1.0,
            number(ds, "RescaleIntercept", float) or 0.0,
        )
        if not (math.isfinite(slope) and math.isfinite(intercept)):
            raise PixelDataError(
                f"{header.source.name}: RescaleSlope {slope} and RescaleIntercept {intercept} do "
                "not convert its pixels to HU; re-export the series from the scanner or PACS."
            )
        hu = frame.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        mask = _padding_mask(ds, frame)
        if mask is not None:
            hu[mask] = AIR_HU
        out.append(np.clip(hu, AIR_HU, MAX_HU, out=hu))
    return out


def decode_hu(header: InstanceHeader) -> np.ndarray:
    """One slice in HU; see :func:`decode_frames`."""
    return decode_frames([header])[0]


def _take(image: np.ndarray, index: np.ndarray, axis: int, fill: float) -> np.ndarray:
    valid = (index >= 0) & (index < image.shape[axis])
    out = np.take(image, np.clip(index, 0, image.shape[axis] - 1), axis=axis)
    shape = [1, 1]
    shape[axis] = -1
    return np.where(valid.reshape(shape), out, np.float32(fill))


def _shift_axis(image: np.ndarray, shift: float, axis: int, fill: float) -> np.ndarray:
    """out[x] = image[x - shift] along ``axis``, linear interpolation, ``fill`` outside."""
    if abs(shift) < 1e-3:
        return image
    whole = math.floor(shift)
    frac = np.float32(shift - whole)
    index = np.arange(image.shape[axis]) - whole
    near = _take(image, index, axis, fill)
    if frac < 1e-3:
        return near
    return (1 - frac) * near + frac * _take(image, index - 1, axis, fill)


def shift_image(image: np.ndarray, rows: float, columns: float, fill: float = AIR_HU) -> np.ndarray:
    """Translate an image by a sub-pixel (rows, columns) offset with bilinear interpolation."""
    return _shift_axis(_shift_axis(image, rows, 0, fill), columns, 1, fill)
