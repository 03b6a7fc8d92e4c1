"""Conversion between Kintsugi grid layers and SimpleITK images (both use ITK's geometry convention)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from kintsugi.core import Geometry, LabelMap, Volume


def geometry_of(img: sitk.Image) -> Geometry:
    n = img.GetDimension()
    return Geometry(img.GetSpacing(), img.GetOrigin(), np.asarray(img.GetDirection(), float).reshape(n, n))


def to_sitk(layer: Volume | LabelMap) -> sitk.Image:
    data = layer.data
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if data.dtype == np.int64 and isinstance(layer, LabelMap):
        data = data.astype(np.int32 if data.max(initial=0) > 65535 else np.uint16)
    img = sitk.GetImageFromArray(np.ascontiguousarray(data))
    g = layer.geometry
    img.SetSpacing(g.spacing)
    img.SetOrigin(g.origin)
    img.SetDirection(tuple(float(v) for v in g.direction.flatten()))
    return img
