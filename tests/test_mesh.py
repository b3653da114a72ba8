"""mediapipe's face mesh on real crops: topology, mapping back to the photo, pose and canonical form."""

from __future__ import annotations

import ast
import inspect
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from facecluster_widgets import standardize as st
from facecluster_widgets.detect.base import points5_from_68
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.io.images import read_image
from facecluster_widgets.recon import mediapipe_topology as topo
from facecluster_widgets.recon.mesh import (
    FaceMesh,
    MeshReconstructor,
    canonical_mesh,
    face_frame,
    head_pose,
    mean_reference,
)

log = logging.getLogger(__name__)

#: mediapipe vertex -> dlib 68-point index for the same anatomical point (as seen in the image).
MP_TO_DLIB = {33: 36, 263: 45, 133: 39, 362: 42, 61: 48, 291: 54}


@pytest.fixture(scope="module")
def dlib_landmarks(dlib_points68):
    return dlib_points68


@pytest.fixture(scope="module")
def reconstructor():
    with MeshReconstructor() as rec:
        yield rec


def _first_photos(root: Path, n: int) -> list[np.ndarray]:
    return [read_image(sorted(p for p in d.iterdir() if p.is_file())[0])
            for d in sorted(p for p in root.iterdir() if p.is_dir())[:n]]


@pytest.fixture(scope="module")
def lfw_meshes(lfw10, dlib_landmarks, reconstructor):
    """(photo, dlib 68 points, mesh) for the first photo of each lfw10 identity."""
    out = []
    for rgb in _first_photos(lfw10, 10):
        p68 = dlib_landmarks(rgb)
        out.append((rgb, p68, reconstructor.reconstruct(rgb, points5_from_68(p68))))
    return out


# ---------------------------------------------------------------- topology


def _source_order_triangles() -> set[tuple[int, int, int]]:
    """The tessellation as written, triangle by triangle, in face_mesh_connections.py."""
    from mediapipe.python.solutions import face_mesh_connections

    tree = ast.parse(inspect.getsource(face_mesh_connections))
    node = next(n for n in tree.body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "FACEMESH_TESSELATION")
    edges = ast.literal_eval(node.value.args[0])
    tris = set()
    for (a, b), (b2, c), (c2, a2) in zip(edges[0::3], edges[1::3], edges[2::3], strict=True):
        assert (b, c, a) == (b2, c2, a2), "source no longer lists the edges triangle by triangle"
        k = (a, b, c).index(min(a, b, c))
        tris.add(((a, b, c) * 2)[k:k + 3])
    return tris


def test_triangles_match_mediapipe_exactly():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    tris = topo.tessellation_triangles()
    assert tris.shape == (852, 3) and tris.dtype == np.int32 and not tris.flags.writeable
    assert set(np.unique(tris)) == set(range(468))
    assert {(int(t[i]), int(t[(i + 1) % 3])) for t in tris for i in range(3)} == set(FACEMESH_TESSELATION)
    assert {tuple(int(i) for i in t) for t in tris} == _source_order_triangles()


def test_mesh_is_one_consistently_wound_manifold_patch():
    tris = topo.tessellation_triangles()
    undirected = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    _, counts = np.unique(undirected, axis=0, return_counts=True)
    assert set(counts) == {1, 2}  # boundary (face outline, eyes, mouth) and interior edges
    rng = np.random.default_rng(0)
    mesh = trimesh.Trimesh(rng.normal(size=(468, 3)), tris, process=False)
    assert mesh.is_winding_consistent
    assert len(mesh.split(only_watertight=False)) == 1


def test_derivation_rejects_edges_that_are_not_triangles():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    with pytest.raises(FaceclusterError, match="triangles"):
        topo.triangles_from_directed_edges(sorted(FACEMESH_TESSELATION)[1:])
    np.testing.assert_array_equal(topo.triangles_from_directed_edges([(0, 1), (1, 2), (2, 0)]), [[0, 1, 2]])


def test_normals_point_out_of_the_face_towards_the_camera(lfw_meshes):
    for _, _, mesh in lfw_meshes:
        tm = mesh.to_trimesh()
        assert (tm.face_normals[:, 2] * tm.area_faces).sum() < 0  # z grows away from the camera
        assert tm.vertex_normals[topo.NOSE_TIP, 2] < -0.5


# ---------------------------------------------------------------- meshes of real photos


def test_meshes_real_faces_and_maps_them_back_to_the_photo(lfw_meshes, orl, yale, dlib_landmarks,
                                                            reconstructor):
    errors = []
    for _, p68, mesh in lfw_meshes:
        assert isinstance(mesh, FaceMesh) and mesh.crop_kind == "aligned" and mesh.crop_size == 256
        assert mesh.vertices.shape == (468, 3) and mesh.vertices.dtype == np.float32
        assert mesh.vertices_image.shape == (468, 3)
        iod = np.linalg.norm(p68[36] - p68[45])
        mp_idx, dl_idx = list(MP_TO_DLIB), list(MP_TO_DLIB.values())
        errors.append(np.linalg.norm(mesh.vertices_image[mp_idx, :2] - p68[dl_idx], axis=1) / iod)
        # the crop coordinates are the photo's under the crop transform
        np.testing.assert_allclose(mesh.image_to_crop.apply(mesh.vertices_image[:, :2]), mesh.vertices[:, :2],
                                   atol=1e-3)
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.05 and errors.max() < 0.2
    for rgb in _first_photos(orl, 4) + _first_photos(yale, 4):
        mesh = reconstructor.reconstruct(rgb, points5_from_68(dlib_landmarks(rgb)))
        assert mesh is not None


def test_box_and_whole_photo_crops_and_no_face(lfw_meshes, reconstructor):
    rgb, p68, aligned = lfw_meshes[0]
    box = (*p68.min(axis=0), *p68.max(axis=0))
    boxed = reconstructor.reconstruct(rgb, box=box)
    assert boxed.crop_kind == "box"
    assert np.abs(boxed.vertices_image[:, :2] - aligned.vertices_image[:, :2]).mean() < 3.0
    whole = reconstructor.reconstruct(rgb)
    assert whole.crop_kind == "whole"
    np.testing.assert_allclose(whole.vertices_image, whole.vertices)
    assert np.abs(whole.vertices_image[:, :2] - aligned.vertices_image[:, :2]).mean() < 3.0
    assert reconstructor.reconstruct_crop(np.full((256, 256, 3), 128, np.uint8)) is None
    with pytest.raises(FaceclusterError, match="uint8"):
        reconstructor.reconstruct_crop(rgb.astype(np.float32))


def test_mirroring_flips_yaw_and_roll(lfw_meshes, dlib_landmarks, reconstructor):
    turned = [(rgb, m) for rgb, _, m in lfw_meshes if abs(m.pose.yaw) > 8]
    assert turned, "lfw10 should hold a face turned by more than 8 degrees"
    for rgb, mesh in turned:
        flipped = np.ascontiguousarray(rgb[:, ::-1])
        pose = reconstructor.reconstruct(flipped, points5_from_68(dlib_landmarks(flipped))).pose
        assert np.sign(pose.yaw) == -np.sign(mesh.pose.yaw)
        assert abs(pose.yaw + mesh.pose.yaw) < 5
        assert abs(pose.roll + mesh.pose.roll) < 3
        assert abs(pose.pitch - mesh.pose.pitch) < 6  # measured up to 4.4 on a face turned by 31 degrees


def test_in_plane_rotation_changes_roll_by_that_angle(lfw_meshes, reconstructor):
    for rgb, p68, mesh in lfw_meshes[:3]:
        h, w = rgb.shape[:2]
        ccw = cv2.getRotationMatrix2D((w / 2, h / 2), 20.0, 1.0)  # +20 deg counter-clockwise on screen
        rotated = cv2.warpAffine(rgb, ccw, (w, h), borderMode=cv2.BORDER_REPLICATE)
        # dlib's frontal detector misses tilted faces, so the 5 points are carried along exactly
        points5 = points5_from_68(p68) @ ccw[:, :2].T + ccw[:, 2]
        pose = reconstructor.reconstruct(rotated, points5).pose
        assert pose.roll - mesh.pose.roll == pytest.approx(-20.0, abs=3.0)  # roll > 0 is clockwise
        assert abs(pose.yaw - mesh.pose.yaw) < 3


def test_profile_faces_read_as_strongly_turned(cfp100, reconstructor):
    root = cfp100 / "Adam_Sandler"
    pose = reconstructor.reconstruct(read_image(root / "profile_01.jpg")).pose
    assert pose.yaw > 40  # the nose points to the image's left in this photo
    assert abs(reconstructor.reconstruct(read_image(root / "frontal_01.jpg")).pose.yaw) < 10


# ---------------------------------------------------------------- pose-free meshes


def test_pose_of_a_known_rotation_is_recovered_and_canonical_form_is_invariant(lfw_meshes):
    verts = lfw_meshes[0][2].vertices_image
    canonical, _ = canonical_mesh(verts)
    np.testing.assert_allclose(face_frame(canonical), np.eye(3), atol=1e-6)
    pose = head_pose(canonical)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((0.0, 0.0, 0.0), abs=1e-4)
    rot = Rotation.from_euler("ZXY", [15.0, -10.0, 25.0], degrees=True).as_matrix()  # roll, pitch, yaw
    moved = canonical @ rot.T * 80.0 + np.array([300.0, -20.0, 5.0])
    pose = head_pose(moved)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((25.0, -10.0, 15.0), abs=1e-4)
    again, pose2 = canonical_mesh(moved)
    np.testing.assert_allclose(again, canonical, atol=1e-5)
    assert pose2 == pose


def test_mean_reference_aligns_different_people(lfw_meshes):
    meshes = [m.vertices_image for _, _, m in lfw_meshes]
    reference = mean_reference(meshes)
    assert reference.shape == (468, 3)
    np.testing.assert_allclose(face_frame(reference), np.eye(3), atol=1e-5)
    assert np.sqrt((reference**2).sum(axis=1).mean()) == pytest.approx(1.0, abs=1e-5)
    for verts in meshes:
        fitted, pose = canonical_mesh(verts, reference)
        anatomical = canonical_mesh(verts)[1]
        rms = np.sqrt(((fitted - reference) ** 2).sum(axis=1).mean())
        assert rms < 0.1  # unit-radius faces: people differ by a few percent once pose is gone
        assert abs(pose.yaw - anatomical.yaw) < 8 and abs(pose.roll - anatomical.roll) < 5
        rot = Rotation.from_euler("ZXY", [-7.0, 12.0, -30.0], degrees=True).as_matrix()
        refit, _ = canonical_mesh(verts @ rot.T, reference)
        np.testing.assert_allclose(refit, fitted, atol=1e-4)


def test_canonical_mesh_rejects_bad_vertices():
    with pytest.raises(FaceclusterError, match="shape"):
        canonical_mesh(np.zeros((100, 3)))
    with pytest.raises(FaceclusterError, match="NaN"):
        head_pose(np.full((468, 3), np.nan))


# ---------------------------------------------------------------- speed and lifetime


def test_mesh_stage_speed_and_graph_reuse(lfw_meshes):
    crops = [st.align(rgb, points5_from_68(p68), 256, 0.5) for rgb, p68, _ in lfw_meshes]
    with MeshReconstructor() as rec:
        rec.reconstruct_crop(*crops[0])  # build the graph outside the timing
        graph = rec._graph
        start = time.perf_counter()
        for crop, sim in crops:
            assert rec.reconstruct_crop(crop, sim) is not None
        ms = 1000 * (time.perf_counter() - start) / len(crops)
        assert rec._graph is graph
    assert rec._graph is None
    log.info("mediapipe mesh: %.1f ms per 256x256 crop", ms)
    assert ms < 100  # about 5 ms alone; generous for a shared 2-core machine
