"""Optional analysis-by-synthesis refinement of a landmark fit: render the morphable face, compare with the photo.

The landmark fit (:mod:`.morphable`) only sees 68 points. From it, this stage minimises (the method's eq. 6,
solved as its eq. 10, ``argmin |I - R(S(alpha), T(beta))|^2`` plus the landmark and prior terms)::

    E = lambda_landmark * E_landmark + lambda_photo * (E_photo + E_albedo + E_light)
        + lambda_reg * (reg_identity * |alpha|^2 + reg_expression * |beta|^2),      beta in [0, 1]

``E_landmark`` and the prior are exactly the landmark fit's (same weights, residuals over ``(s0 * d0)^2``,
regularisers in prior units), so with ``lambda_photo = 0`` the fit is already the optimum. ``E_photo`` is the
mean squared RGB error (colours in [0, 1]) between the photo and the rendered face over a fixed skin mask:
crop pixels covered, at the start, by the skin triangles (inside the jaw line and below the eyebrows of
the model), eroded by a pixel. ``E_albedo`` keeps the albedo smooth (mean squared step across mesh edges)
and mildly left/right symmetric; ``E_light`` is a small ridge on the non-constant light coefficients.
Without such priors the albedo would copy the photo at any shape and no geometry could do better.

Image formation: vertex colour = albedo * (SH basis of the camera-frame vertex normal . 9 coefficients per
channel), Gouraud-interpolated by the soft rasteriser of :mod:`.render` under the fit's scaled orthographic
camera.

The albedo is interpolated from ~800 control points (:func:`control_basis`), so for a fixed shape albedo
and light are a small bilinear least-squares problem, solved to convergence by Levenberg-Marquardt. Stage 1
solves it for the landmark fit's shape: ``photo_error_before``, the best that colour alone can do. Stage 2
runs Adam on identity (80), expression (53), scale, rotation (axis-angle step) and translation, with the
colour re-solved every ``resolve_every`` steps; ``photo_error_after`` re-solves it for the final shape, so
the difference is due to the geometry alone. Off by default in the product.

``benchmarks/refine_photometric.py --control`` measures it (figures in benchmarks/README.md): the photometric
error falls after the geometry moves, and with the geometry frozen the same colour re-solve gains nothing, so
the gain is geometric; it costs seconds per face, which is why it is off by default.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from scipy import sparse
from scipy.linalg import solve
from scipy.ndimage import binary_erosion
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from ..errors import FaceclusterError
from .morphable import CONTOUR_68, FitSettings, MorphableFit, MorphableModel, _checked_points
from .render import (
    Fragments,
    _torch,
    alpha_image,
    ambient_light,
    blend,
    edge_neighbours,
    rasterize,
    select_faces,
    sh_basis,
    shade,
    vertex_normals,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Jaw line then eyebrows right-to-left: the outline of the skin region on the model.
_SKIN_OUTLINE_68 = np.r_[np.arange(17), np.arange(26, 16, -1)]


# --------------------------------------------------------------------------------------------- refinement


@dataclass(frozen=True)
class RefineSettings:
    """Knobs of :class:`PhotometricRefiner`.

    ``crop_size`` pixels square around the landmarks (widened by ``crop_margin`` per side): small enough to
    stay fast on two CPU cores, near lfw's native face size. The albedo lives on ``albedo_controls`` points
    spread over the mesh (see :func:`control_basis`); it and the light are solved (``colour_rounds``
    Levenberg-Marquardt steps; 4 already land within 0.2 % of 6) for the initial and the final shape, and
    re-solved with one step, with the triangle selection, every ``resolve_every`` of the ``iterations`` Adam
    steps on the geometry. Learning rates are Adam steps in the units of each unknown (prior units, radians,
    log scale, image pixels). ``fit_settings`` supplies the landmark weights and the prior of the landmark
    fit. ``lambda_photo`` trades photometric error against landmark residual: on the benchmark's 20 lfw10
    faces 10 / 30 / 50 / 100 lowered the photometric error by 10 / 19 / 23 / 28 % while the landmark RMS
    grew from 2.01 px to 2.02 / 2.07 / 2.10 / 2.17 px.
    """

    crop_size: int = 112
    crop_margin: float = 0.1
    iterations: int = 60
    colour_rounds: int = 6
    resolve_every: int = 8
    lambda_landmark: float = 1.0
    lambda_photo: float = 50.0
    lambda_reg: float = 1.0
    albedo_controls: int = 800
    albedo_smoothness: float = 1.0
    albedo_symmetry: float = 0.1
    light_prior: float = 1e-4
    refine_expression: bool = True
    lr_identity: float = 0.05
    lr_expression: float = 0.02
    lr_rotation: float = 0.003
    lr_scale: float = 0.003
    lr_translation: float = 0.2
    faces_per_pixel: int = 4
    blur_radius: float = 1.0
    sigma: float = 0.3
    gamma: float = 1.0
    mask_erosion: int = 1
    fit_settings: FitSettings = field(default_factory=FitSettings)

    def __post_init__(self) -> None:
        if self.crop_size < 16 or self.crop_margin < 0:
            raise FaceclusterError("crop_size must be at least 16 pixels and crop_margin non-negative")
        if self.iterations < 0 or self.colour_rounds < 1 or self.resolve_every < 1 or self.albedo_controls < 1:
            raise FaceclusterError("iterations must be >= 0; colour_rounds, resolve_every, albedo_controls >= 1")
        weights = (self.lambda_landmark, self.lambda_photo, self.lambda_reg, self.albedo_smoothness,
                   self.albedo_symmetry, self.light_prior)
        if min(weights) < 0:
            raise FaceclusterError("the energy weights must be non-negative")
        if self.faces_per_pixel < 1 or self.sigma <= 0 or self.gamma <= 0 or self.blur_radius < 0:
            raise FaceclusterError("faces_per_pixel must be >= 1, sigma and gamma > 0, blur_radius >= 0")


@dataclass(frozen=True, eq=False)
class RefinedFit:
    """The refined face: ``alpha``, ``beta``, pose ``(scale, R, t)`` as in :class:`MorphableFit`.

    Photometric errors are mean squared RGB errors (colours in [0, 1]) over one fixed skin mask of
    ``mask_pixels`` crop pixels, each with the albedo and light solved for the shape it is measured on:
    ``photo_error_initial`` for the landmark fit under ambient light, ``photo_error_before`` for the
    landmark fit with lighting (the fair baseline: all that colour alone can do), ``photo_error_after``
    for the refined shape. Landmark RMS is in image pixels. ``iterations`` geometry steps took ``seconds``
    (all of :meth:`PhotometricRefiner.refine`). ``albedo (V, 3)`` and ``light (9, 3)`` are the final
    colour model.
    """

    alpha: np.ndarray
    beta: np.ndarray
    scale: float
    R: np.ndarray
    t: np.ndarray
    photo_error_initial: float
    photo_error_before: float
    photo_error_after: float
    landmark_rms_before: float
    landmark_rms_after: float
    iterations: int
    seconds: float
    mask_pixels: int
    albedo: np.ndarray
    light: np.ndarray


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """The photo resampled to the crop (colours in [0, 1]), where the crop lies inside the photo, and the
    map ``crop = image * zoom + offset`` (both axes) from photo pixels to crop pixels."""

    rgb: np.ndarray
    inside: np.ndarray
    zoom: float
    offset: np.ndarray


def crop_face(rgb: np.ndarray, points68: np.ndarray, size: int, margin: float) -> FaceCrop:
    """A square ``size`` crop around the landmarks, antialiased by Pillow; pixel centres at integers."""
    x0, y0 = points68.min(axis=0)
    x1, y1 = points68.max(axis=0)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    corner = centre - side / 2
    pad = int(np.ceil(side)) + 1
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    inside = np.pad(np.full(rgb.shape[:2], 255, dtype=np.uint8), pad)
    # Pillow's pixel k spans [k, k + 1]; ours is centred on k, hence the half-pixel shifts.
    box = (corner[0] + pad + 0.5, corner[1] + pad + 0.5, corner[0] + pad + 0.5 + side, corner[1] + pad + 0.5 + side)
    image = np.asarray(Image.fromarray(padded).resize((size, size), Image.Resampling.BILINEAR, box=box))
    valid = np.asarray(Image.fromarray(inside).resize((size, size), Image.Resampling.BILINEAR, box=box)) > 254
    zoom = size / side
    return FaceCrop(rgb=image.astype(np.float32) / 255.0, inside=valid, zoom=zoom, offset=-corner * zoom)


def _skin_vertices(model: MorphableModel) -> np.ndarray:
    """Vertices of the mean face inside the jaw line and below the eyebrows, seen from the front."""
    outline = model.mean[model.landmarks68[_SKIN_OUTLINE_68], :2]
    x, y = model.mean[:, 0], model.mean[:, 1]
    inside = np.zeros(model.n_vertices, dtype=bool)
    for (ax, ay), (bx, by) in zip(outline, np.roll(outline, -1, axis=0), strict=True):
        crosses = (ay > y) != (by > y)
        at = ax + (y - ay) * (bx - ax) / np.where(by == ay, 1.0, by - ay)
        inside ^= crosses & (x < at)
    return inside


def control_basis(vertices: np.ndarray, count: int, neighbours: int = 8) -> sparse.csr_matrix:
    """``(V, count)`` interpolation from ``count`` farthest-point-sampled control vertices: normalised
    Gaussian weights of the ``neighbours`` nearest controls, width the median control spacing.

    A per-vertex albedo with a smoothness prior is too ill-conditioned to solve in a few steps (the mesh
    is finer than the pixels); on controls about a centimetre apart it is a small dense system."""
    count = min(count, len(vertices))
    chosen = np.zeros(count, dtype=np.intp)
    nearest = np.full(len(vertices), np.inf)
    for k in range(1, count):
        nearest = np.minimum(nearest, ((vertices - vertices[chosen[k - 1]]) ** 2).sum(axis=1))
        chosen[k] = int(np.argmax(nearest))
    tree = cKDTree(vertices[chosen])
    neighbours = min(neighbours, count)
    spacing = float(np.median(tree.query(vertices[chosen], k=min(2, count))[0][:, -1])) if count > 1 else 1.0
    distance, index = tree.query(vertices, k=neighbours)
    distance, index = distance.reshape(len(vertices), -1), index.reshape(len(vertices), -1)
    weight = np.exp(-0.5 * (distance / max(spacing, 1e-9)) ** 2)
    weight /= weight.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(len(vertices)), index.shape[1])
    return sparse.csr_matrix((weight.ravel(), (rows, index.ravel())), shape=(len(vertices), count))


@dataclass(frozen=True, eq=False)
class _Observation:
    """The skin-mask pixels a rendering covers, as a linear map of vertex colours: ``design @ colours``
    should match ``target``, the photo there minus the background's share of each pixel; ``constant`` is
    the summed squared error of the mask pixels no triangle reaches (they show the background)."""

    design: sparse.csr_matrix
    target: np.ndarray
    constant: float


class PhotometricRefiner:
    """Refines :class:`MorphableFit` results of one model by analysis-by-synthesis; holds the model's
    tensors, skin labels and albedo basis, read-only after construction."""

    def __init__(self, model: MorphableModel, settings: RefineSettings | None = None) -> None:
        torch = _torch()
        self.model = model
        self.settings = settings or RefineSettings()
        fit_settings = self.settings.fit_settings
        self.n_identity = min(fit_settings.n_identity, model.n_identity)
        dtype = torch.float32
        self._mean = torch.as_tensor(model.mean, dtype=dtype)
        self._identity = torch.as_tensor(model.identity[: self.n_identity].reshape(self.n_identity, -1), dtype=dtype)
        self._expression = torch.as_tensor(model.expression.reshape(model.n_expression, -1), dtype=dtype)
        self._triangles = torch.as_tensor(model.triangles, dtype=torch.int64)
        self._neighbours = edge_neighbours(model.triangles)
        self._skin = torch.as_tensor(_skin_vertices(model)[:, None], dtype=dtype)
        weights = np.ones(68) if fit_settings.landmark_weights is None else np.array(fit_settings.landmark_weights)
        if fit_settings.contour == "weight":
            weights[CONTOUR_68] *= fit_settings.contour_weight
        self._landmark_weights = torch.as_tensor(weights, dtype=dtype)
        self._d0 = model.eye_outer_distance
        self._basis = control_basis(model.mean, self.settings.albedo_controls)
        self._prior = self._albedo_prior()

    def _albedo_prior(self) -> sparse.csr_matrix:
        """``(k, k)`` quadratic form on the control colours (one channel): mean squared colour step across
        mesh edges times ``albedo_smoothness``, plus mean squared left/right difference times
        ``albedo_symmetry`` (the light, not the albedo, should explain a face lit from one side)."""
        model, settings, basis = self.model, self.settings, self._basis
        edges = np.unique(np.sort(model.triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
        n = model.n_vertices
        rows = np.repeat(np.arange(len(edges)), 2)
        step = sparse.csr_matrix((np.tile([1.0, -1.0], len(edges)), (rows, edges.ravel())), shape=(len(edges), n))
        form = settings.albedo_smoothness / len(edges) * (step @ basis).T @ (step @ basis)
        if settings.albedo_symmetry > 0:
            try:
                mirror = model.mirror_vertices
            except FaceclusterError:
                log.warning("%s: no left/right vertex map, so no albedo symmetry prior", model.source)
            else:
                flip = sparse.identity(n, format="csr") - sparse.csr_matrix(
                    (np.ones(n), (np.arange(n), mirror)), shape=(n, n))
                form = form + settings.albedo_symmetry / n * (flip @ basis).T @ (flip @ basis)
        return (form + 1e-9 * sparse.identity(basis.shape[1])).tocsr()

    def refine(self, rgb: np.ndarray, points68: np.ndarray, fit: MorphableFit) -> RefinedFit:
        """Refine ``fit`` of ``points68`` (image pixels, y down) in the photo ``rgb`` ``(H, W, 3)`` uint8."""
        torch = _torch()
        started = time.perf_counter()
        settings = self.settings
        points = _checked_points(points68)
        if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
            raise FaceclusterError("refine_fit needs the photo as an (H, W, 3) uint8 RGB array "
                                   "(facecluster_widgets.io.images.read_image)")
        crop = crop_face(rgb, points, settings.crop_size, settings.crop_margin)
        size = (settings.crop_size, settings.crop_size)
        target = torch.as_tensor(crop.rgb)
        q = torch.as_tensor(points * np.array([1.0, -1.0]), dtype=torch.float32)        # y up, as in the fit

        alpha = torch.zeros(self.n_identity)
        known = min(len(fit.alpha), self.n_identity)
        alpha[:known] = torch.as_tensor(fit.alpha[:known], dtype=torch.float32)
        beta = torch.as_tensor(fit.beta, dtype=torch.float32).clone()
        rotation = torch.zeros(3)
        log_scale = torch.zeros(1)
        t = torch.as_tensor(fit.t, dtype=torch.float32).clone()
        R0 = torch.as_tensor(fit.R, dtype=torch.float32)
        s0 = float(fit.scale)
        landmarks = torch.as_tensor(np.asarray(fit.landmark_vertices), dtype=torch.int64)
        zoom, offset = float(crop.zoom), torch.as_tensor(crop.offset, dtype=torch.float32)

        def rotation_matrix() -> torch.Tensor:
            skew = torch.zeros(3, 3).index_put((torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])), rotation)
            return torch.linalg.matrix_exp(skew - skew.T) @ R0

        def geometry() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            """Crop ``xy``, depth, camera-frame normals and the landmarks' image points (y up)."""
            shape = self._mean + (alpha @ self._identity + beta @ self._expression).reshape(-1, 3)
            camera = shape @ rotation_matrix().T
            scale = s0 * torch.exp(log_scale)
            image = scale * camera[:, :2] + t
            xy = image * torch.tensor([zoom, -zoom]) + offset
            return xy, scale * camera[:, 2] * zoom, vertex_normals(camera, self._triangles), image[landmarks]

        def select(xy: torch.Tensor, depth: torch.Tensor) -> np.ndarray:
            return select_faces(xy.detach().numpy(), depth.detach().numpy(), self.model.triangles, size,
                                settings.faces_per_pixel, settings.blur_radius)

        def landmark_rms(projected: torch.Tensor) -> float:
            return float(torch.sqrt(((projected.detach() - q) ** 2).sum(1).mean()))

        with torch.no_grad():
            xy, depth, normals, projected = geometry()
            candidates = select(xy, depth)
            frag = rasterize(xy, depth, self._triangles, candidates, size, settings.sigma, settings.gamma,
                             self._neighbours)
            skin = blend(frag, self._skin)[..., 0].numpy()
            covered = alpha_image(frag).numpy()
        mask_np = (skin > 0.5) & (covered > 0.5) & crop.inside
        if settings.mask_erosion:
            mask_np = binary_erosion(mask_np, iterations=settings.mask_erosion)
        n_mask = int(mask_np.sum())
        if n_mask < 50:
            raise FaceclusterError(f"the fitted face covers only {n_mask} skin pixels of the crop; "
                                   "the landmarks or the fit are off")
        mask = torch.as_tensor(mask_np, dtype=torch.float32)[..., None]
        background = (target * mask).sum(dim=(0, 1)) / n_mask

        def observe(frag: Fragments) -> _Observation:
            return self._observation(frag, mask_np, crop.rgb, background.numpy())

        # Stage 1: the best colour model for the landmark fit's shape (the fair "before").
        sh = sh_basis(normals).numpy().astype(np.float64)
        seen = observe(frag)
        controls, light = self._solve_colour(seen, sh, ambient_light())
        initial = self._colour_error(seen, sh, controls, light, n_mask)
        controls, light = self._solve_colour(seen, sh, light, controls, settings.colour_rounds)
        before = self._colour_error(seen, sh, controls, light, n_mask)
        rms_before = landmark_rms(projected)

        # Stage 2: Adam on identity, expression and pose; colour re-solved as the shape moves.
        groups = [{"params": [alpha], "lr": settings.lr_identity},
                  {"params": [rotation], "lr": settings.lr_rotation},
                  {"params": [log_scale], "lr": settings.lr_scale},
                  {"params": [t], "lr": settings.lr_translation}]
        if settings.refine_expression:
            groups.append({"params": [beta], "lr": settings.lr_expression})
        for group in groups:
            group["params"][0].requires_grad_(True)
        optimizer = torch.optim.Adam(groups)
        fs = settings.fit_settings
        lo, hi = self.model.expression_bounds
        landmark_norm = (s0 * self._d0) ** 2
        for step in range(settings.iterations):
            optimizer.zero_grad()
            xy, depth, normals, projected = geometry()
            if step and step % settings.resolve_every == 0:
                candidates = select(xy, depth)
            frag = rasterize(xy, depth, self._triangles, candidates, size, settings.sigma, settings.gamma,
                             self._neighbours)
            if step and step % settings.resolve_every == 0:
                controls, light = self._solve_colour(observe(frag), sh_basis(normals.detach()).double().numpy(),
                                                     light, controls)
            albedo = torch.as_tensor(self._basis @ controls, dtype=torch.float32)
            image = blend(frag, shade(albedo, normals, torch.as_tensor(light, dtype=torch.float32)), background)
            e_photo = (((image - target) ** 2) * mask).sum() / (3 * n_mask)
            e_landmark = (self._landmark_weights * ((projected - q) ** 2).sum(1)).sum() / landmark_norm
            e_reg = fs.reg_identity * (alpha ** 2).sum() + fs.reg_expression * (beta ** 2).sum()
            loss = (settings.lambda_landmark * e_landmark + settings.lambda_photo * e_photo
                    + settings.lambda_reg * e_reg)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                beta.clamp_(lo, hi)

        with torch.no_grad():
            xy, depth, normals, projected = geometry()
            frag = rasterize(xy, depth, self._triangles, select(xy, depth), size, settings.sigma, settings.gamma,
                             self._neighbours)
            sh = sh_basis(normals).double().numpy()
            seen = observe(frag)
            controls, light = self._solve_colour(seen, sh, light, controls, settings.colour_rounds)
            after = self._colour_error(seen, sh, controls, light, n_mask)
            R = rotation_matrix().double().numpy()
            scale = s0 * float(torch.exp(log_scale))
        rms_after = landmark_rms(projected)
        seconds = time.perf_counter() - started
        log.debug("refine: photometric %.5f -> %.5f -> %.5f, landmark RMS %.2f -> %.2f px, %.2f s",
                  initial, before, after, rms_before, rms_after, seconds)
        return RefinedFit(alpha=alpha.detach().double().numpy(), beta=beta.detach().double().numpy(),
                          scale=scale, R=R, t=t.detach().double().numpy(),
                          photo_error_initial=initial, photo_error_before=before, photo_error_after=after,
                          landmark_rms_before=rms_before, landmark_rms_after=rms_after,
                          iterations=settings.iterations, seconds=seconds, mask_pixels=n_mask,
                          albedo=self._basis @ controls, light=light)

    def _observation(self, frag: Fragments, mask: np.ndarray, photo: np.ndarray,
                     background: np.ndarray) -> _Observation:
        pixels = frag.pixels.numpy()
        keep = mask.reshape(-1)[pixels]
        alpha = frag.alpha.detach().numpy()[keep].astype(np.float64)
        weights = frag.weights.detach().numpy()[keep].astype(np.float64) * alpha[:, None, None]
        vertices = frag.vertices.numpy()[keep]
        rows = np.repeat(np.arange(len(alpha)), weights.shape[1] * weights.shape[2])
        design = sparse.csr_matrix((weights.ravel(), (rows, vertices.ravel())),
                                   shape=(len(alpha), self.model.n_vertices))
        flat = photo.reshape(-1, 3).astype(np.float64)
        target = flat[pixels[keep]] - (1 - alpha)[:, None] * background
        unreached = np.setdiff1d(np.flatnonzero(mask.reshape(-1)), pixels[keep])
        constant = float(((flat[unreached] - background) ** 2).sum())
        return _Observation(design=design, target=target, constant=constant)

    def _solve_colour(self, seen: _Observation, sh: np.ndarray, light: np.ndarray,
                      controls: np.ndarray | None = None, rounds: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The control albedo ``(k, 3)`` and light ``(9, 3)`` that minimise the photometric error plus the
        albedo prior for a fixed shape. Without ``controls`` the albedo is solved for the given light
        (linear). Otherwise ``rounds`` Levenberg-Marquardt steps on albedo and light together: the two
        trade a gradient of albedo for a gradient of light, a valley that alternating between them crawls
        along. The light's constant term stays at ambient 1, which fixes the scale they trade freely."""
        light = np.array(light, dtype=np.float64)
        if controls is None:
            shading = sh @ light
            out = np.zeros((self._basis.shape[1], 3))
            for c in range(3):
                jacobian = (seen.design @ sparse.diags(shading[:, c]) @ self._basis).tocsc()
                hessian = (jacobian.T @ jacobian) / self._n(seen) + self._prior
                out[:, c] = _factor(hessian).solve(jacobian.T @ seen.target[:, c] / self._n(seen))
            return out, light
        controls = np.array(controls, dtype=np.float64)
        for c in range(3):
            controls[:, c], light[:, c] = self._gauss_newton(seen, sh, controls[:, c], light[:, c], rounds, c)
        return controls, light

    @staticmethod
    def _n(seen: _Observation) -> int:
        return 3 * max(len(seen.target), 1)

    def _gauss_newton(self, seen: _Observation, sh: np.ndarray, x: np.ndarray, light: np.ndarray, rounds: int,
                      channel: int) -> tuple[np.ndarray, np.ndarray]:
        n, y, prior = self._n(seen), seen.target[:, channel], self._prior
        ridge = self.settings.light_prior

        def cost(x: np.ndarray, light: np.ndarray) -> float:
            residual = seen.design @ ((self._basis @ x) * (sh @ light)) - y
            return float(residual @ residual / n + x @ (prior @ x) + ridge * light[1:] @ light[1:])

        current, damping = cost(x, light), 1e-4
        for _ in range(rounds):
            albedo, shading = self._basis @ x, sh @ light
            jx = (seen.design @ sparse.diags(shading) @ self._basis).tocsc()                # (n, k)
            jl = seen.design @ (sh[:, 1:] * albedo[:, None])                              # (n, 8)
            residual = seen.design @ (albedo * shading) - y
            hxx = ((jx.T @ jx) / n + prior).tocsc()
            hxl = np.asarray(jx.T @ jl) / n
            hll = jl.T @ jl / n + ridge * np.eye(8)
            gx, gl = jx.T @ residual / n + prior @ x, jl.T @ residual / n + ridge * light[1:]
            for _ in range(8):                 # Levenberg-Marquardt: damp until the step lowers the cost
                dx = sparse.diags(hxx.diagonal() * damping)
                z = _factor(hxx + dx).solve(np.column_stack([gx, hxl]))
                schur = hll + np.diag(np.diag(hll) * damping) - hxl.T @ z[:, 1:]
                step_l = solve(schur, gl - hxl.T @ z[:, 0], assume_a="sym")
                trial_x, trial_l = x - (z[:, 0] - z[:, 1:] @ step_l), light.copy()
                trial_l[1:] -= step_l
                trial = cost(trial_x, trial_l)
                if trial <= current:
                    x, light, current, damping = trial_x, trial_l, trial, damping / 3
                    break
                damping *= 10
            else:
                break
        return x, light

    def _colour_error(self, seen: _Observation, sh: np.ndarray, controls: np.ndarray, light: np.ndarray,
                      n_mask: int) -> float:
        colours = (self._basis @ controls) * (sh @ light)
        residual = seen.design @ colours - seen.target
        return float(((residual ** 2).sum() + seen.constant) / (3 * n_mask))


def _factor(matrix: sparse.spmatrix) -> Any:
    """Sparse LU of a symmetric positive definite matrix; minimum-degree ordering on its own pattern is
    about three times faster here than SuperLU's default."""
    return splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})


def refine_fit(rgb: np.ndarray, points68: np.ndarray, fit: MorphableFit, model: MorphableModel,
               settings: RefineSettings | None = None) -> RefinedFit:
    """One-off refinement; build a :class:`PhotometricRefiner` once to refine many faces."""
    return PhotometricRefiner(model, settings).refine(rgb, points68, fit)
