"""The method's stages as the pipeline engine runs them: what each computes for one image, the store
key it is filed under, and which per-face outputs become table columns or aligned arrays.

Every stage works on all faces of one image at once (arrays lead with the face axis), so the store
holds one entry per image and stage. A face a stage cannot process gets NaN there, and the run
report counts it; its row stays in the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sized
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MAX_IMAGE_PIXELS, THUMBNAIL_SIZE
from ..descriptors import BLOCKS as DESCRIPTOR_BLOCKS
from ..descriptors import DescriptorExtractor
from ..detect import Detection, get_detector
from ..embed import DEFAULT_EMBEDDER, EmbedInput, get_embedder
from ..errors import FaceclusterError
from ..identity import load_identity_projection, packaged_path
from ..io.images import decode_image, thumbnail
from ..recon.mesh import MeshReconstructor
from ..recon.morphable import FitSettings, LandmarkFitter, MorphableFit, default_model_path, load_morphable_model
from ..standardize import StandardiseConfig, crop_box, standardise
from ..store import Result, Stage, file_identity

log = logging.getLogger(__name__)

#: The detector used when none is named, chosen with the embedder and the clustering defaults by the maximin
#: rule (benchmarks/defaults_grid.py): YuNet, whose own 5 landmarks hold on profiles, where the 68 points of the
#: "auto" cascade (mediapipe, dlib HOG, padded mediapipe) do not; the SFace crop is aligned on those 5 points.
DEFAULT_DETECTOR = "yunet"


@dataclass(frozen=True)
class PipelineConfig:
    """Every choice that changes what ``extract`` computes; each enters the store key of its stage."""

    detector: str = DEFAULT_DETECTOR
    detector_params: dict = field(default_factory=dict)
    standardise: StandardiseConfig = field(default_factory=StandardiseConfig)
    embedder: str = DEFAULT_EMBEDDER
    embedder_params: dict = field(default_factory=dict)
    mesh: bool = True
    #: The linear 3D morphable model: a path, or None for $FACECLUSTER_3DMM / the shared ICT model.
    morphable_model: str | None = None
    fit: FitSettings = field(default_factory=FitSettings)
    #: Map from identity coefficients to the learnt identity space (the "identity" block): a path, None for the
    #: packaged one (trained on other people's fits, see facecluster_widgets/data/README.md), or "" for none.
    identity_projection: str | None = None
    #: Fit the 3DMM and compute the 3D descriptors (needs the model file).
    reconstruct_3d: bool = True
    #: Analysis-by-synthesis refinement of each fit against the photo (torch; ~5 s/face on 2 cores): None = off,
    #: or :class:`~facecluster_widgets.recon.refine.RefineSettings`. The refined α feeds the descriptors.
    refine: Any = None
    max_pixels: int = MAX_IMAGE_PIXELS


@dataclass
class StageTimer:
    """Seconds spent and items processed per step, for the run report and benchmarks."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, step: str, seconds: float, n: int = 1) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds
        self.counts[step] = self.counts.get(step, 0) + n

    def to_dict(self) -> dict:
        return {"seconds": {k: round(v, 4) for k, v in self.seconds.items()}, "counts": dict(self.counts)}


class ImageWork:
    """One image on its way through the stages: pixels decoded lazily, once; results by stage name."""

    def __init__(self, path: Path, image_id: str, max_pixels: int, timer: StageTimer) -> None:
        self.path, self.image_id, self.max_pixels, self.timer = path, image_id, max_pixels, timer
        self.results: dict[str, Result] = {}
        self._decoded: tuple[np.ndarray, dict] | None = None
        self._detections: list[Detection] | None = None

    def decoded(self) -> tuple[np.ndarray, dict]:
        if self._decoded is None:
            t0 = time.perf_counter()
            rgb, info = decode_image(self.path, self.max_pixels)
            self.timer.add("decode", time.perf_counter() - t0)
            self._decoded = (rgb, info.to_dict())
        return self._decoded

    @property
    def rgb(self) -> np.ndarray:
        return self.decoded()[0]

    @property
    def detections(self) -> list[Detection]:
        if self._detections is None:
            self._detections = detections_from(self.results["detect"])
        return self._detections


@dataclass(frozen=True)
class StageRunner:
    """A stage as the engine runs it.

    ``columns`` maps a faces-table column to the per-face scalar array that fills it; ``arrays`` maps
    a store array name (aligned with the table) to the per-face array that fills it.
    """

    stage: Stage
    compute: Callable[[ImageWork], tuple[dict[str, np.ndarray], dict]]
    columns: Mapping[str, str] = field(default_factory=dict)
    arrays: Mapping[str, str] = field(default_factory=dict)
    #: For a stage whose heavy half gains from several images at once (the embedding network): ``prepare(work)``
    #: does the per-image half (one item per face: its crops) and ``finish(prepared_list)`` the rest for many images,
    #: returning each image's ``(arrays, meta)`` as ``compute`` would. No later stage may need its results.
    prepare: Callable[[ImageWork], Sized] | None = None
    finish: Callable[[list[Any]], list[tuple[dict[str, np.ndarray], dict]]] | None = None


def build_stages(config: PipelineConfig, resources: ExitStack) -> list[StageRunner]:
    """The stages of a run, in order. Models load lazily; ``resources`` closes them after the run."""
    detector = get_detector(config.detector, **config.detector_params)
    resources.callback(getattr(detector, "close", lambda: None))
    image = Stage("image", 1, {"thumbnail": THUMBNAIL_SIZE, "max_pixels": config.max_pixels})
    detect = Stage("detect", 1, {"backend": detector.name, **detector.params(), "max_pixels": config.max_pixels})

    def run_image(work: ImageWork) -> tuple[dict, dict]:
        rgb, info = work.decoded()
        return {"thumbnail": thumbnail(rgb)}, info

    def run_detect(work: ImageWork) -> tuple[dict, dict]:
        detections = detector.detect(work.rgb)
        return detections_to_arrays(detections), {"sources": [d.source for d in detections]}

    runners = [StageRunner(image, run_image),
               StageRunner(detect, run_detect, columns={"landmark_quality": "quality"}),
               _standardise_stage(config.standardise, detect),
               _embed_stage(config, detect)]
    if config.mesh:
        reconstructor = resources.enter_context(MeshReconstructor())
        runners.append(_mesh_stage(reconstructor, detect))
    if config.reconstruct_3d:
        runners.extend(_morphable_stages(config, detect))
    return runners


def _morphable_stages(config: PipelineConfig, detect: Stage) -> list[StageRunner]:
    """The 3DMM fit to each face's 68 landmarks, then the 3D descriptors of its identity shape."""
    path = config.morphable_model or default_model_path()
    model = load_morphable_model(path)
    fitter = LandmarkFitter(model, config.fit)
    extractor = DescriptorExtractor(model, n_identity=config.fit.n_identity)
    n_alpha, n_beta = config.fit.n_identity, model.n_expression
    refiner = _refiner(model, config.refine)
    refine_params = {"refine": asdict(config.refine)} if refiner is not None else {}
    fit_stage = Stage("morphable", 1, {"model": file_identity(path), **asdict(config.fit), **refine_params}, (detect,))
    projection = None if config.identity_projection == "" else load_identity_projection(config.identity_projection)
    descriptor_stage = Stage("descriptors", 2, {
        "geodesic_method": "transported",
        "identity_projection": file_identity(config.identity_projection or packaged_path()) if projection else None,
    }, (fit_stage,))
    mean_face = extractor.compute(np.zeros(n_alpha, np.float32))
    widths = {name: int(mean_face.block(name).shape[0]) for name in DESCRIPTOR_BLOCKS}
    names = DESCRIPTOR_BLOCKS + (("identity",) if projection is not None else ())

    def run_fit(work: ImageWork) -> tuple[dict, dict]:
        n = len(work.detections)
        out = {"alpha": np.full((n, n_alpha), np.nan, np.float32), "beta": np.full((n, n_beta), np.nan, np.float32),
               "rotation": np.full((n, 3, 3), np.nan, np.float32), "scale": np.full(n, np.nan, np.float32),
               "translation": np.full((n, 2), np.nan, np.float32), "rms_iod": np.full(n, np.nan, np.float32),
               "angles": np.full((n, 3), np.nan, np.float32)}
        for i, det in enumerate(work.detections):
            if det.points68 is None:
                continue
            try:
                fit = fitter.fit(det.points68)
                if refiner is not None:
                    fit = _refined(fit, refiner.refine(work.rgb, det.points68, fit))
            except FaceclusterError as exc:
                log.warning("%s face %d: no 3DMM fit (%s)", work.path, i, exc)
                continue
            out["alpha"][i], out["beta"][i], out["rotation"][i] = fit.alpha, fit.beta, fit.R
            out["scale"][i], out["translation"][i], out["rms_iod"][i] = fit.scale, fit.t, fit.rms_iod
            out["angles"][i] = fit.angles_deg
        return out, {"failed": int(np.isnan(out["scale"]).sum())}

    def run_descriptors(work: ImageWork) -> tuple[dict, dict]:
        alphas = work.results["morphable"].arrays["alpha"]
        blocks = {name: [] for name in DESCRIPTOR_BLOCKS}
        for alpha in alphas:
            if np.isnan(alpha).any():
                for name in DESCRIPTOR_BLOCKS:
                    blocks[name].append(None)
                continue
            d = extractor.compute(alpha)
            for name in DESCRIPTOR_BLOCKS:
                blocks[name].append(d.block(name))
        out = {name: np.array([v if v is not None else np.full(widths[name], np.nan, np.float32) for v in rows],
                              dtype=np.float32).reshape(len(alphas), widths[name]) for name, rows in blocks.items()}
        if projection is not None:
            ident = projection.transform(alphas).astype(np.float32)
            out["identity"] = ident.reshape(len(alphas), projection.n_components)
        return out, {}

    return [StageRunner(fit_stage, run_fit, columns={"fit_residual": "rms_iod"},
                        arrays={"fit_alpha": "alpha", "fit_beta": "beta", "fit_rotation": "rotation"}),
            StageRunner(descriptor_stage, run_descriptors,
                        arrays={f"feature_{name}": name for name in names})]



def _refiner(model: object, settings: object) -> object:
    """The optional photometric refiner; torch is imported only when refinement is asked for."""
    if settings is None:
        return None
    from ..recon.refine import PhotometricRefiner, RefineSettings

    if not isinstance(settings, RefineSettings):
        raise FaceclusterError(f"refine must be None or a RefineSettings, got {type(settings).__name__}")
    return PhotometricRefiner(model, settings)


def _refined(fit: MorphableFit, refined: object) -> MorphableFit:
    """The landmark fit's record with the refined shape, pose and landmark residual (same eye-corner scale)."""
    iod = fit.rms_px / fit.rms_iod if fit.rms_iod > 0 else float("nan")
    return replace(fit, alpha=refined.alpha, beta=refined.beta, scale=refined.scale, R=refined.R, t=refined.t,
                   rms_px=refined.landmark_rms_after, rms_iod=refined.landmark_rms_after / iod)


def _standardise_stage(cfg: StandardiseConfig, detect: Stage) -> StageRunner:
    stage = Stage("standardise", 1, cfg.to_dict(), (detect,))
    unaligned = replace(cfg, align=False)

    def run(work: ImageWork) -> tuple[dict, dict]:
        n, size = len(work.detections), cfg.size
        final = np.zeros((n, size, size), np.uint8) if cfg.grey else np.zeros((n, size, size, 3), np.uint8)
        crops = np.zeros((n, size, size, 3), np.uint8)
        residual = np.full(n, np.nan, np.float32)
        matrices = np.full((n, 2, 3), np.nan, np.float32)
        for i, det in enumerate(work.detections):
            if det.points5 is not None:
                face = standardise(work.rgb, det.points5, cfg)
                residual[i] = face.similarity.rms_residual
                matrices[i] = face.similarity.matrix
            else:  # no landmarks: the detection box, unrotated
                crop, sim = crop_box(work.rgb, det.box, size)
                face = standardise(crop, None, unaligned)
                matrices[i] = sim.matrix
            final[i], crops[i] = face.final, face.aligned_rgb
        return {"final": final, "crop": crops, "residual": residual, "matrix": matrices}, {}

    return StageRunner(stage, run, columns={"align_residual": "residual"},
                       arrays={"face_crop": "crop", "face_standardised": "final"})


def _embed_stage(config: PipelineConfig, detect: Stage) -> StageRunner:
    embedder = get_embedder(config.embedder, **config.embedder_params)
    stage = Stage("embed", 1, {"backend": embedder.name, **embedder.params()}, (detect,))

    def inputs(work: ImageWork) -> list[EmbedInput]:
        return [EmbedInput.from_detection(work.rgb, det) for det in work.detections]

    def outputs(vectors: np.ndarray) -> tuple[dict, dict]:
        return {"embedding": vectors}, {"failed": int(np.isnan(vectors).any(axis=1).sum())}

    def run(work: ImageWork) -> tuple[dict, dict]:
        faces = inputs(work)
        return outputs(embedder.embed(faces) if faces else np.zeros((0, embedder.dim), np.float32))

    if not (hasattr(embedder, "prepare") and hasattr(embedder, "describe")):  # a plug-in with embed() only
        return StageRunner(stage, run, arrays={"feature_2d": "embedding"})

    def prepare(work: ImageWork) -> list:
        return embedder.prepare(inputs(work))

    def finish(prepared: list[list]) -> list[tuple[dict, dict]]:
        vectors = embedder.describe([crop for crops in prepared for crop in crops])
        ends = np.cumsum([len(crops) for crops in prepared])
        return [outputs(vectors[end - len(crops):end]) for crops, end in zip(prepared, ends, strict=True)]

    return StageRunner(stage, run, arrays={"feature_2d": "embedding"}, prepare=prepare, finish=finish)


def _mesh_stage(reconstructor: MeshReconstructor, detect: Stage) -> StageRunner:
    stage = Stage("mesh", 1, reconstructor.params(), (detect,))

    def run(work: ImageWork) -> tuple[dict, dict]:
        n = len(work.detections)
        vertices = np.full((n, 468, 3), np.nan, np.float32)
        pose = np.full((n, 3), np.nan, np.float32)
        for i, det in enumerate(work.detections):
            try:
                mesh = reconstructor.reconstruct(work.rgb, det.points5, det.box)
            except FaceclusterError as exc:
                log.warning("%s face %d: no mesh (%s)", work.path, i, exc)
                mesh = None
            if mesh is None:
                continue
            vertices[i] = mesh.vertices_image if mesh.vertices_image is not None else mesh.vertices
            p = mesh.pose
            pose[i] = (p.yaw, p.pitch, p.roll)
        return {"vertices": vertices, "pose": pose}, {"failed": int(np.isnan(pose).any(axis=1).sum())}

    return StageRunner(stage, run, columns={"yaw": ("pose", 0), "pitch": ("pose", 1), "roll": ("pose", 2)},
                       arrays={"mesh_vertices": "vertices"})


def detections_to_arrays(detections: list[Detection]) -> dict[str, np.ndarray]:
    """Detections as fixed-shape arrays (NaN where a backend gives no landmarks), for the store."""
    n = len(detections)
    points5 = np.full((n, 5, 2), np.nan, np.float32)
    points68 = np.full((n, 68, 2), np.nan, np.float32)
    for i, d in enumerate(detections):
        if d.points5 is not None:
            points5[i] = d.points5
        if d.points68 is not None:
            points68[i] = d.points68
    return {"boxes": np.array([d.box for d in detections], np.float32).reshape(n, 4),
            "scores": np.array([d.score for d in detections], np.float32), "points5": points5,
            "points68": points68,
            "quality": np.array([np.nan if d.landmark_quality is None else d.landmark_quality for d in detections],
                                np.float32)}


def detections_from(result: Result) -> list[Detection]:
    arrays, sources = result.arrays, result.meta.get("sources", [])
    out = []
    for i, box in enumerate(arrays["boxes"]):
        p5, p68, quality = arrays["points5"][i], arrays["points68"][i], float(arrays["quality"][i])
        out.append(Detection(box=tuple(float(v) for v in box), score=float(arrays["scores"][i]),
                             points5=None if np.isnan(p5).all() else p5,
                             points68=None if np.isnan(p68).all() else p68,
                             source=sources[i] if i < len(sources) else "",
                             landmark_quality=None if np.isnan(quality) else quality))
    return out
