"""The stress protocol: the same photos with 30 % of faces occluded, shrunk or relit, made deterministically.

Corrupted copies are written inside the store (``<store>/generated/<variant>/``), never beside the user's
photos; the photos left intact keep their original paths, so the store's cache serves them again and only
the corrupted copies are computed. Occluders are placed from each photo's clean landmarks (the primary
face's 5 points from a clean extraction), so an eye band covers the eyes whatever the pose.

Variants:
- ``occlusion``: one of three occluders per chosen photo, in turn: a dark eye band (sunglasses), a pale
  lower-face mask, a random grey-noise patch of 0.8 × the eye distance on the face.
- ``lowres``: the photo at ¼ of its width and height.
- ``lighting``: strong gamma, alternately 2.5 (dark) and 0.4 (washed out).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import FaceclusterError
from ..io.datasets import FaceSource
from ..io.images import read_image
from ..standardize import gamma
from ..store import Store, atomic_write

VARIANTS = ("occlusion", "lowres", "lighting")
#: Share of photos corrupted in each variant.
STRESS_FRACTION = 0.30
OCCLUDERS = ("eyes", "mouth", "patch")


def stress_source(source: FaceSource, store: Store, variant: str, points5: dict[str, np.ndarray],
                  fraction: float = STRESS_FRACTION, seed: int = 0) -> tuple[FaceSource, dict[str, str]]:
    """``(stressed source, condition per path)``: ``fraction`` of the photos replaced by corrupted copies.

    ``points5`` maps a photo's path to its primary face's 5 points (from a clean run); photos without
    them are never chosen for occlusion. The condition is ``"clean"`` or the corruption applied.
    """
    if variant not in VARIANTS:
        raise FaceclusterError(f"unknown stress variant {variant!r}; choose from {VARIANTS}")
    rng = np.random.default_rng([seed, VARIANTS.index(variant)])
    eligible = [i for i, p in enumerate(source.paths) if variant != "occlusion" or str(p) in points5]
    chosen = set(rng.choice(eligible, size=round(fraction * len(source)), replace=False).tolist())
    folder = store.root / "generated" / variant
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths, conditions = [], {}
    made = 0
    for i, path in enumerate(source.paths):
        if i not in chosen:
            paths.append(path)
            conditions[str(path)] = "clean"
            continue
        rgb = read_image(path)
        kind = _kind(variant, made)
        made += 1
        out = _corrupt(rgb, kind, points5.get(str(path)), rng)
        digest = hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
        target = folder / (source.labels[i] if source.labels else "unlabelled").replace("/", "__") / \
            f"{kind}__{Path(path).stem}__{digest}.png"
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_png(target, out)
        paths.append(target)
        conditions[str(target)] = kind
    stressed = FaceSource(paths=tuple(paths), labels=source.labels, root=None, name=f"{source.name}-{variant}",
                          skipped=source.skipped)
    return stressed, conditions


def _write_png(path: Path, rgb: np.ndarray) -> None:
    def write(fh) -> None:
        Image.fromarray(rgb).save(fh, format="PNG")

    atomic_write(path, write)


def _kind(variant: str, index: int) -> str:
    if variant == "occlusion":
        return OCCLUDERS[index % len(OCCLUDERS)]
    if variant == "lighting":
        return ("dark", "bright")[index % 2]
    return "lowres"


def _corrupt(rgb: np.ndarray, kind: str, points5: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    if kind == "lowres":
        h, w = rgb.shape[:2]
        return np.asarray(Image.fromarray(rgb).resize((max(w // 4, 1), max(h // 4, 1)), Image.Resampling.BOX))
    if kind in ("dark", "bright"):
        return gamma(rgb, 2.5 if kind == "dark" else 0.4)
    out = rgb.copy()
    p = np.asarray(points5, dtype=np.float64)
    iod = float(np.linalg.norm(p[1] - p[0]))
    h, w = rgb.shape[:2]

    def fill(x0: float, y0: float, x1: float, y1: float, value: np.ndarray | int) -> None:
        xa, ya = int(max(round(x0), 0)), int(max(round(y0), 0))
        xb, yb = int(min(round(x1), w)), int(min(round(y1), h))
        if xb > xa and yb > ya:
            out[ya:yb, xa:xb] = value if np.isscalar(value) else value[: yb - ya, : xb - xa]

    eyes_y = (p[0, 1] + p[1, 1]) / 2
    if kind == "eyes":  # sunglasses: a dark band across both eyes
        fill(p[0, 0] - 0.6 * iod, eyes_y - 0.3 * iod, p[1, 0] + 0.6 * iod, eyes_y + 0.3 * iod, 20)
    elif kind == "mouth":  # a surgical mask from below the nose to the chin
        mouth_y = (p[3, 1] + p[4, 1]) / 2
        fill(p[3, 0] - 0.7 * iod, p[2, 1] + 0.1 * iod, p[4, 0] + 0.7 * iod, mouth_y + 1.0 * iod, 225)
    else:  # a random patch of grey noise somewhere on the face
        side = 0.8 * iod
        cx = rng.uniform(p[:, 0].min(), p[:, 0].max())
        cy = rng.uniform(eyes_y - 0.3 * iod, (p[3, 1] + p[4, 1]) / 2)
        noise = rng.integers(0, 256, size=(int(side) + 2, int(side) + 2, 1), dtype=np.uint8).repeat(3, axis=2)
        fill(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, noise)
    return out


def primary_points5(store: Store) -> dict[str, np.ndarray]:
    """Path → the 5 points of each photo's primary face, from the store's last (clean) extraction."""
    key = store.read_json("run")["stages"]["detect"]
    table = store.table
    out = {}
    for row in table.loc[table["primary"].fillna(False).astype(bool)].itertuples():
        result = store.get(key, row.image_id)
        if result is not None:
            p = result.arrays["points5"][row.face_index]
            if np.isfinite(p).all():
                out[row.path] = p
    return out
