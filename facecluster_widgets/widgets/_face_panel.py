"""The explorer's face panel: the focused face's photo with its landmarks, the standardisation steps (made with
the store's own settings, as the pipeline made them) and its 3D surface."""

from __future__ import annotations

import ipywidgets as w

from ..errors import FaceclusterError
from ..review.collection import FaceCollection
from ..review.session import ClusterView
from ..standardize import standardise
from ._kit import Kit
from ._thumbs import crop_around, draw_landmarks, encode, esc
from .mesh_viewer import MeshViewer

STEP_TITLES = ("grey (NTSC)", "aligned", "CLAHE")


class FacePanel(w.HBox):
    """``FacePanel(faces, mesh=True)``; :meth:`show` draws a face, :meth:`retitle` refreshes its cluster line."""

    def __init__(self, faces: FaceCollection, mesh: bool = True, kit: Kit | None = None) -> None:
        kit = kit or Kit()
        html, box = kit.look(w.HTML), kit.look(w.Box)
        self.faces = faces
        self.row = -1
        self.title = w.HTML(**html)
        self.title.add_class("fc-face-title")
        self.photo = w.Image(format="png", **kit.look(w.Image, max_width="260px", max_height="260px",
                                                       object_fit="contain"))
        self.steps = [w.Image(format="png", **kit.look(w.Image, width="112px", height="112px"))
                      for _ in STEP_TITLES]
        labels = [w.HTML(f"<small>{t}</small>", **html) for t in STEP_TITLES]
        # a narrower canvas than the viewer's own: the face fills more of it
        self.mesh = MeshViewer(faces, height=320, kit=kit, width="460px") if mesh else None
        steps = w.HBox([w.VBox([img, label], **box) for img, label in zip(self.steps, labels, strict=True)], **box)
        left = w.VBox([self.title, w.HBox([self.photo], **box), steps], **kit.look(w.Box, width="420px"))
        super().__init__([left] + ([self.mesh] if self.mesh is not None else []), **box)
        self.add_class("fc-face-panel")

    def retitle(self, view: ClusterView, note: str = "") -> None:
        row = self.row
        if not 0 <= row < len(self.faces):
            self.title.value = ""
            return
        table = self.faces.table
        bits = [esc(view.name_of(int(view.labels[row])))]
        if self.faces.labels is not None and self.faces.labels[row] is not None:
            bits.append(f"identity {esc(self.faces.labels[row])}")
        if "yaw" in table and table["yaw"].notna().iloc[row]:
            bits.append(f"yaw {float(table['yaw'].iloc[row]):+.0f}°")
        self.title.value = (f"<div style='line-height:1.3'><b>{esc(self.faces.relative_names[row])}</b><br>"
                            f"<small>{' · '.join(bits)}</small>{note}</div>")

    def show(self, row: int, view: ClusterView) -> None:
        """Photo with landmarks, the standardisation steps, the 3D surface of face ``row``."""
        faces = self.faces
        self.row = int(row)
        detection = faces.detection(row)
        note = ""
        try:
            rgb = faces.photo(row)
        except FaceclusterError as exc:
            rgb = None
            note = f"<br><small>photo unavailable: {esc(exc)}</small>"
        self.retitle(view, note)
        images = [None, faces.crop(row), faces.standardised(row)]
        if rgb is not None:
            marked = draw_landmarks(rgb, detection)
            shown = crop_around(marked, detection.box, 0.5) if detection is not None else marked
            self.photo.value = encode(shown, "png", 260)
            if detection is not None and detection.points5 is not None:
                steps = standardise(rgb, detection.points5, faces.standardise_config).steps()
                grey = steps.get("grey")
                images = [crop_around(grey, detection.box, 0.3) if grey is not None else None,
                          steps.get("aligned"), steps.get("clahe")]
        else:
            picture = faces.thumbnail(row)
            self.photo.value = encode(picture, "png") if picture is not None else b""
        for widget, image in zip(self.steps, images, strict=True):
            widget.value = encode(image, "png", 112) if image is not None else b""
        if self.mesh is not None:
            self.mesh.show(row)
