"""``PipelineStepper``: one face through every stage of the method, step by step, each with what it does and why.

Every picture comes from the core: the stored detection, :func:`~facecluster_widgets.standardize.standardise`
for the intermediate images (the store keeps only the final crop), the stored embedding and descriptors, the
3D surfaces of :mod:`facecluster_widgets.viz.mesh`, and the session's fused distance for the last step.
Steps are built when first shown.
"""

from __future__ import annotations

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go

from ..descriptors import GEODESIC_PAIRS
from ..errors import FaceclusterError
from ..review.collection import FaceCollection
from ..review.session import ClusterSession
from ..standardize import standardise, template_points
from ..viz.charts import curvature_histograms
from ..viz.figure_widget import FigureWidget
from ..viz.private import private
from ._thumbs import crop_around, draw_landmarks, encode, esc
from .mesh_viewer import MeshViewer

#: (key, title, what the step does and why).
STEPS: tuple[tuple[str, str, str], ...] = (
    ("detect", "1 · detection", "The detector finds the face box; 68 landmarks (yellow) and the 5 alignment points "
     "(red) are placed on it. Landmark quality says how far the 68 points can be trusted (low on profiles)."),
    ("grey", "2 · grey", "NTSC luminance (0.299 R + 0.587 G + 0.114 B): colour depends on camera and light, "
     "identity does not, so the 2D standardisation drops it."),
    ("align", "3 · alignment", "A similarity transform (scale, rotation, shift) maps the 5 points onto a fixed "
     "template (red dots): every face ends up with its eyes and mouth at the same pixels."),
    ("clahe", "4 · CLAHE", "Contrast-limited adaptive histogram equalisation evens out lighting tile by tile "
     "without blowing up noise: shadows across a face stop looking like features."),
    ("embed", "5 · 2D embedding", "A deep network turns the aligned face into a unit vector; faces of one "
     "person point the same way (small cosine distance). Shown: the vector and the faces nearest to it."),
    ("mesh", "6 · face mesh", "mediapipe's 468-vertex mesh on the face crop gives the head pose and a first "
     "3D shape."),
    ("fit", "7 · 3D model fit", "A morphable model is fitted to the 68 landmarks; keeping only its identity "
     "coefficients removes expression and pose. Colours: mean curvature; black: the descriptor's geodesic paths."),
    ("describe", "8 · 3D descriptors", "Geodesic lengths between named points (divided by the eye-corner "
     "distance, so head size drops out) and curvature histograms of four regions."),
    ("cluster", "9 · cluster", "The fused distance λ·cosine(2D) + (1−λ)·Mahalanobis(3D) places the face among "
     "the others; DBSCAN then K-Means++ give its cluster. Shown: its nearest faces and both parts of the distance."),
)


class PipelineStepper(w.VBox):
    """``PipelineStepper(faces, row=0, session=None)``: step through face ``row``; :meth:`show` picks another."""

    def __init__(self, faces: FaceCollection | object, row: int = 0, *, session: ClusterSession | None = None,
                 step: str = "detect") -> None:
        self.faces = faces if isinstance(faces, FaceCollection) else FaceCollection.from_store(faces)
        self._session = session
        self.row = int(row)
        self._cache: dict[tuple[int, str], w.Widget] = {}
        self._mesh: dict[str, MeshViewer] = {}
        self.picker = w.ToggleButtons(options=[(title, key) for key, title, _ in STEPS], value=step,
                                      style={"button_width": "118px"})
        self.prev = w.Button(description="◀ previous", layout=w.Layout(width="110px"))
        self.next = w.Button(description="next ▶", layout=w.Layout(width="110px"))
        self.title = w.HTML()
        self.body = w.Box()
        self.prev.on_click(lambda _: self._move(-1))
        self.next.on_click(lambda _: self._move(1))
        self.picker.observe(lambda _: self._render(), names=["value"])
        super().__init__([self.picker, w.HBox([self.prev, self.next]), self.title, self.body])
        self.add_class("fc-stepper")
        self._render()

    @property
    def session(self) -> ClusterSession:
        if self._session is None:
            self._session = ClusterSession(self.faces, persist=False)
        return self._session

    def show(self, row: int, step: str | None = None) -> PipelineStepper:
        self.row = int(row)
        if step is not None and step != self.picker.value:
            self.picker.value = step  # renders
        else:
            self._render()
        return self

    def _move(self, delta: int) -> None:
        keys = [key for key, _, _ in STEPS]
        self.picker.value = keys[(keys.index(self.picker.value) + delta) % len(keys)]

    def _render(self) -> None:
        key = self.picker.value
        title, text = next((t, x) for k, t, x in STEPS if k == key)
        self.title.value = (f"<h4 style='margin:4px 0'>{esc(title)} — {esc(self.faces.file_names[self.row])}</h4>"
                            f"<p style='max-width:760px'>{esc(text)}</p>")
        cache_key = (self.row, key)
        if cache_key not in self._cache:
            try:
                self._cache[cache_key] = getattr(self, f"_step_{key}")()
            except FaceclusterError as exc:
                self._cache[cache_key] = w.HTML(f"<i>not available for this face: {esc(exc)}</i>")
        self.body.children = (self._cache[cache_key],)

    # -- steps ---------------------------------------------------------------------------------
    def _photo(self) -> tuple[np.ndarray, object]:
        detection = self.faces.detection(self.row)
        if detection is None:
            raise FaceclusterError("no stored detection (a features-only collection)")
        return self.faces.photo(self.row), detection

    def _standardised(self):
        rgb, detection = self._photo()
        if detection.points5 is None:
            raise FaceclusterError("the detector gave no alignment points for this face")
        return rgb, detection, standardise(rgb, detection.points5, self.faces.standardise_config)

    def _step_detect(self) -> w.Widget:
        rgb, det = self._photo()
        image = crop_around(draw_landmarks(rgb, det), det.box, 0.4)
        quality = "—" if det.landmark_quality is None else f"{det.landmark_quality:.2f}"
        return w.HBox([_image(image, 320), w.HTML(
            f"<small>detector: <b>{esc(det.source)}</b><br>score {det.score:.2f}<br>"
            f"landmark quality {quality}<br>box {tuple(round(v) for v in det.box)}</small>")])

    def _step_grey(self) -> w.Widget:
        rgb, det, face = self._standardised()
        return w.HBox([_captioned(crop_around(rgb, det.box, 0.3), "colour", 220),
                       _captioned(crop_around(face.grey, det.box, 0.3), "grey", 220)])

    def _step_align(self) -> w.Widget:
        rgb, det, face = self._standardised()
        marked = draw_landmarks(np.dstack([face.aligned] * 3) if face.aligned.ndim == 2 else face.aligned, None)
        marked = _dots(marked, template_points(face.config.size))
        sim = face.similarity
        return w.HBox([_captioned(crop_around(face.grey, det.box, 0.3), "before", 220),
                       _captioned(marked, "aligned (template in red)", 220),
                       w.HTML(f"<small>scale {sim.scale:.3f}<br>rotation {sim.rotation_deg:+.1f}°<br>"
                              f"residual {sim.rms_residual:.2f} px</small>")])

    def _step_clahe(self) -> w.Widget:
        _, _, face = self._standardised()
        before, after = face.aligned, face.clahe if face.clahe is not None else face.final
        return w.HBox([_captioned(before, f"aligned (contrast σ {before.std():.0f})", 220),
                       _captioned(after, f"CLAHE (σ {after.std():.0f})", 220)])

    def _step_embed(self) -> w.Widget:
        block = self.faces.features.blocks.get("2d")
        if block is None or not np.isfinite(block[self.row]).all():
            raise FaceclusterError("no 2D embedding")
        vec = np.asarray(block[self.row], np.float32)
        width = 16 if vec.size % 16 == 0 else vec.size
        strip = private(FigureWidget(go.Heatmap(z=vec.reshape(-1, width), colorscale="RdBu", zmid=0.0,
                                                   showscale=False)))
        strip.update_layout(height=180, width=420, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                            xaxis={"visible": False}, yaxis={"visible": False})
        unit = block / np.linalg.norm(block, axis=1, keepdims=True).clip(1e-12)
        cosine = 1.0 - unit @ unit[self.row]
        cosine[self.row] = np.inf
        nearest = np.argsort(np.nan_to_num(cosine, nan=np.inf))[:5]
        return w.VBox([strip, w.HTML("<small>nearest faces by cosine distance of the 2D embedding:</small>"),
                       self._faces_row(nearest, cosine)])

    def _mesh_step(self, kind: str) -> w.Widget:
        viewer = self._mesh.get(kind)
        if viewer is None:
            viewer = self._mesh[kind] = MeshViewer(self.faces, height=320, kind=kind)
        viewer.show(self.row)
        if viewer.surface is None:
            raise FaceclusterError(viewer.caption.value.replace("<small>", "").replace("</small>", ""))
        return viewer

    def _step_mesh(self) -> w.Widget:
        viewer = self._mesh_step("mediapipe")
        table = self.faces.table
        pose = " · ".join(f"{k} {table[k].iloc[self.row]:+.0f}°" for k in ("yaw", "pitch", "roll") if k in table)
        return w.VBox([viewer, w.HTML(f"<small>head pose: {esc(pose)}</small>")])

    def _step_fit(self) -> w.Widget:
        return self._mesh_step("identity")

    def _step_describe(self) -> w.Widget:
        blocks = self.faces.features.blocks
        if "geodesic" not in blocks or "curvature" not in blocks or not np.isfinite(blocks["geodesic"][self.row]).all():
            raise FaceclusterError("no 3D descriptors")
        names = [f"{a}–{b}" for a, b in GEODESIC_PAIRS]
        bars = private(FigureWidget(go.Bar(x=np.asarray(blocks["geodesic"][self.row], np.float32), y=names,
                                      orientation="h", marker_color="#444")))
        bars.update_layout(height=420, width=420, margin={"l": 200, "r": 10, "t": 30, "b": 30},
                           title="geodesic lengths ÷ eye-corner distance", yaxis={"autorange": "reversed"})
        curvature = {self.faces.file_names[self.row]: blocks["curvature"][self.row]}
        hist = private(FigureWidget(curvature_histograms(curvature, height=380)))
        return w.VBox([bars, hist])

    def _step_cluster(self) -> w.Widget:
        session = self.session
        view = session.view
        valid = session.valid_rows
        where = np.flatnonzero(valid == self.row)
        if not where.size:
            raise FaceclusterError("incomplete features: this face is not clustered")
        i = int(where[0])
        lam = float(view.params["lam"])
        d2, d3 = session.model.distance_.block_distances
        fused = lam * d2[i] + (1 - lam) * d3[i]
        order = np.argsort(fused)
        order = order[order != i][:5]
        rows = valid[order]
        detail = "".join(f"<tr><td>{esc(self.faces.file_names[r])}</td><td>{esc(view.name_of(int(view.labels[r])))}"
                         f"</td><td>{fused[j]:.3f}</td><td>{d2[i, j]:.3f}</td><td>{d3[i, j]:.3f}</td></tr>"
                         for r, j in zip(rows, order, strict=True))
        return w.VBox([
            w.HTML(f"<b>cluster: {esc(view.name_of(int(view.labels[self.row])))}</b> "
                   f"<small>(ε {view.params['eps']}, λ {lam})</small>"),
            self._faces_row(rows, None),
            w.HTML("<table><tr><th>nearest face</th><th>its cluster</th><th>fused</th><th>2D part (cos/s2)</th>"
                   f"<th>3D part (Mahalanobis/s3)</th></tr>{detail}</table>"),
        ])

    def _faces_row(self, rows: np.ndarray, distances: np.ndarray | None) -> w.Widget:
        items = []
        for r in rows:
            picture = self.faces.thumbnail(int(r))
            caption = self.faces.file_names[int(r)] + ("" if distances is None else f" ({distances[r]:.3f})")
            items.append(w.VBox([_image(picture, 96) if picture is not None else w.HTML("—"),
                                 w.HTML(f"<small>{esc(caption)}</small>", layout=w.Layout(width="110px"))]))
        return w.HBox(items)


def _image(rgb: np.ndarray, size: int) -> w.Image:
    return w.Image(value=encode(rgb, "png", size), format="png",
                   layout=w.Layout(max_width=f"{size}px", max_height=f"{size}px"))


def _captioned(rgb: np.ndarray, caption: str, size: int) -> w.Widget:
    return w.VBox([_image(rgb, size), w.HTML(f"<small>{esc(caption)}</small>")])


def _dots(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
    draw = ImageDraw.Draw(im)
    for x, y in np.asarray(points, float):
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(230, 30, 30))
    return np.asarray(im)
