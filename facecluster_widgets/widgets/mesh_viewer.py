"""``MeshViewer``: one face's 3D surface in k3d, coloured by curvature, with the geodesic paths of its descriptor.

The surface is the identity shape of the face's 3DMM fit (what the 3D descriptors are computed on); a store
without the 3D stages falls back to mediapipe's 468-vertex mesh (no paths: the descriptors do not live there).
The morphable model and its descriptor precomputation load once per viewer, on the first face shown.
"""

from __future__ import annotations

import logging

import ipywidgets as w

from ..descriptors import DescriptorExtractor
from ..errors import FaceclusterError
from ..recon.morphable import load_morphable_model
from ..review.collection import FaceCollection
from ..viz.mesh import CURVATURE_RANGE, Surface, identity_surface, mediapipe_surface, mesh_plot, update_mesh_plot
from ._kit import Kit
from ._thumbs import esc

log = logging.getLogger(__name__)


class MeshViewer(w.VBox):
    """``MeshViewer(faces, row)``; :meth:`show` switches to another face. ``faces``: a FaceCollection or a store.

    ``kind``: "auto" (the 3DMM identity shape, else mediapipe's mesh), "identity" or "mediapipe"; ``kit``: the
    layouts and styles of the explorer it is part of; ``width``: of the viewer (CSS, default: all there is).
    """

    def __init__(self, faces: FaceCollection | object, row: int | None = None, *, height: int = 320,
                 paths: bool = True, kind: str = "auto", model_path: str | None = None, kit: Kit | None = None,
                 width: str | None = None) -> None:
        if kind not in ("auto", "identity", "mediapipe"):
            raise FaceclusterError(f"MeshViewer kind must be auto, identity or mediapipe, got {kind!r}")
        self.faces = faces if isinstance(faces, FaceCollection) else FaceCollection.from_store(faces)
        self.height, self.paths, self.kind, self.model_path = height, paths, kind, model_path
        kit = kit or Kit()
        self.caption = w.HTML(**kit.look(w.HTML))
        self.caption.add_class("fc-mesh-caption")
        self.plot = None
        self.surface: Surface | None = None
        self.row: int | None = None
        self._extractor: DescriptorExtractor | None = None
        self._holder = w.Box(**kit.look(w.Box, width="100%", min_height=f"{height}px"))
        self._holder.add_class("fc-mesh")
        super().__init__([self._holder, self.caption], **kit.look(w.Box, **({"width": width} if width else {})))
        if row is not None:
            self.show(row)

    @property
    def extractor(self) -> DescriptorExtractor:
        if self._extractor is None:
            self._extractor = DescriptorExtractor(load_morphable_model(self.model_path))
        return self._extractor

    def surface_of(self, row: int) -> tuple[Surface, str]:
        """The surface to draw for face ``row`` and a sentence saying what it is (raises FaceclusterError)."""
        alpha = self.faces.alpha(row) if self.kind != "mediapipe" else None
        if alpha is not None:
            surface = identity_surface(alpha, self.extractor, paths=self.paths)
            return surface, (f"identity shape of the 3DMM fit (expression and pose removed), coloured by mean "
                             f"curvature ({CURVATURE_RANGE[0]:g} blue … {CURVATURE_RANGE[1]:g} red, × eye-corner "
                             f"distance); black: the {len(surface.paths)} geodesic paths of the descriptor")
        vertices = self.faces.mesh_vertices(row) if self.kind != "identity" else None
        if vertices is not None:
            why = " (no 3DMM fit for this face)" if self.kind == "auto" else ""
            return mediapipe_surface(vertices), f"mediapipe's 468-vertex mesh{why}"
        raise FaceclusterError(f"{self.faces.file_names[row]}: no 3D reconstruction in this store for this face")

    def show(self, row: int) -> None:
        """Draw face ``row``; a face without any 3D result shows why instead."""
        self.row = int(row)
        name = self.faces.file_names[self.row]
        try:
            surface, what = self.surface_of(self.row)
        except FaceclusterError as exc:
            self.caption.value = f"<small>{esc(exc)}</small>"
            return
        self.surface = surface
        if self.plot is None:
            self.plot = mesh_plot(surface, height=self.height)
            self._holder.children = (self.plot,)
        else:
            update_mesh_plot(self.plot, surface)
        self.caption.value = f"<small><b>{esc(name)}</b>: {esc(what)}</small>"
