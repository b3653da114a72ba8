"""Flags on faces the pipeline keeps but a user should weigh: too small, cut by the photo's edge, seen in profile.

Why flags rather than drops: each of these faces still has an identity, and a cluster view can show or
hide them; dropping would lose the photo silently. Rows without a face get <NA> (nothing to judge).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: A face whose box is under this many pixels on its shorter side is flagged ``small_face``: embedders work on
#: crops of 112-160 px, so a 40 px face is upsampled ~3x and its embedding is noticeably less reliable. The
#: default detector itself finds nothing below ~40 px (dlib HOG's minimum window).
SMALL_FACE_PX = 48
#: A box within this many pixels of an image edge was clipped there: the face continues beyond the photo.
BORDER_PX = 1.0
#: |yaw| of at least this many degrees flags ``profile``: one eye is hidden and 2D embeddings degrade.
PROFILE_YAW = 45.0


def flag_faces(table: pd.DataFrame, sizes: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """``table`` with boolean columns ``small_face``, ``cut_by_border`` and ``profile`` added (in place too).

    ``sizes`` maps ``image_id`` to the decoded image's ``(width, height)``; ``profile`` needs a ``yaw``
    column (the mesh stage's) and is <NA> where the yaw is unknown.
    """
    face = (table["status"] == "ok").to_numpy(dtype=bool)
    x0, y0, x1, y1 = (table[c].to_numpy(dtype=np.float64) for c in ("x0", "y0", "x1", "y1"))
    wh = np.array([sizes.get(i, (np.nan, np.nan)) for i in table["image_id"].astype(str)], np.float64).reshape(-1, 2)
    small = np.minimum(x1 - x0, y1 - y0) < SMALL_FACE_PX
    cut = ((x0 <= BORDER_PX) | (y0 <= BORDER_PX) | (x1 >= wh[:, 0] - BORDER_PX) | (y1 >= wh[:, 1] - BORDER_PX))
    table["small_face"] = pd.array(np.where(face, small, False), dtype="boolean")
    table["cut_by_border"] = pd.array(np.where(face, cut, False), dtype="boolean")
    table.loc[~face, ["small_face", "cut_by_border"]] = pd.NA
    yaw = table["yaw"].to_numpy(dtype=np.float64) if "yaw" in table else np.full(len(table), np.nan)
    profile = pd.array(np.abs(yaw) >= PROFILE_YAW, dtype="boolean")
    profile[~face | np.isnan(yaw)] = pd.NA
    table["profile"] = profile
    return table
