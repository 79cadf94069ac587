"""numpy images → Qt images (GUI thread)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def to_qimage(image: np.ndarray) -> QImage:
    """(H, W) gray or (H, W, 3) BGR uint8 → a QImage owning a copy of the pixels."""
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if img.ndim == 2:
        q = QImage(img.data, w, h, img.strides[0], QImage.Format.Format_Grayscale8)
    else:
        q = QImage(img.data, w, h, img.strides[0], QImage.Format.Format_BGR888)
    return q.copy()


def to_pixmap(image: np.ndarray) -> QPixmap:
    """(H, W) or (H, W, 3) BGR uint8 → QPixmap."""
    return QPixmap.fromImage(to_qimage(image))
