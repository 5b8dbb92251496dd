"""Tests of face comparison (face3d_core.compare) on synthetic faces with known geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from face3d_core import compare
from face3d_core.compare import (
    ComparisonError,
    align_face,
    apply_transform,
    compare_pair,
    difference_map,
    eye_profile,
    nose_profile,
    nose_prominence,
    similarity_transform,
)
from face3d_core.errors import Face3DError

SIZE = 256


def synthetic_face(nose_height: float = 0.35, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A face-like relative inverse depth map (larger = nearer) and its five landmarks.

    An ellipsoidal head, a nose ridge ending in a tip, eye sockets; the landmarks sit where
    the features are (eyes 0.3 * size apart).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy = size / 2, size * 0.55
    head = 1.0 - ((xx - cx) / (0.36 * size)) ** 2 - ((yy - cy) / (0.46 * size)) ** 2
    depth = np.sqrt(np.clip(head, 0, None))
    eyes = np.array([[cx - 0.15 * size, 0.45 * size], [cx + 0.15 * size, 0.45 * size]])
    nose = np.array([cx, 0.62 * size])
    mouth = np.array([[cx - 0.12 * size, 0.78 * size], [cx + 0.12 * size, 0.78 * size]])
    ridge = np.exp(-(((xx - cx) / (0.035 * size)) ** 2)) * np.clip((yy - 0.42 * size) / (0.2 * size), 0, 1)
    ridge *= np.exp(-(np.clip(yy - nose[1], 0, None) ** 2) / (0.03 * size) ** 2)
    depth += nose_height * ridge
    for ex, ey in eyes:
        depth -= 0.08 * np.exp(-((xx - ex) ** 2 + (yy - ey) ** 2) / (0.04 * size) ** 2)
    depth = np.where(head > 0, depth, 0.0).astype(np.float32)
    landmarks = np.vstack([eyes, nose, mouth]).astype(np.float32)
    return depth, landmarks


def warp(depth: np.ndarray, landmarks: np.ndarray, angle_deg: float, scale: float, shift: tuple[float, float]):
    """Rotate/scale/shift a face image and its landmarks (what a differently framed photo looks like)."""
    h, w = depth.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale)
    matrix[:, 2] += shift
    out = cv2.warpAffine(depth, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out, apply_transform(matrix, landmarks).astype(np.float32)


@pytest.fixture(scope="module")
def face():
    return synthetic_face()


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    angle = np.deg2rad(20)
    rot = 1.7 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + np.array([5.0, -3.0])
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(apply_transform(matrix, src), dst, atol=1e-9)


def test_identical_faces_have_zero_difference(face):
    depth, marks = face
    a = align_face(depth, marks)
    b = align_face(depth.copy(), marks.copy())
    metrics = compare_pair(a, b)
    assert metrics.rms_difference == pytest.approx(0.0, abs=1e-7)
    assert metrics.correlation == pytest.approx(1.0, abs=1e-6)
    assert metrics.overlap > 0.9
    assert np.nanmax(np.abs(difference_map(a, b))) == pytest.approx(0.0, abs=1e-6)


def test_aligned_depth_is_normalised_with_nearest_at_one(face):
    aligned = align_face(*face)
    region = compare.face_region_mask(aligned.size) & aligned.valid
    values = aligned.depth[region]
    assert np.percentile(values, 98) == pytest.approx(1.0, abs=1e-3)
    assert np.percentile(values, 2) == pytest.approx(0.0, abs=1e-3)
    assert aligned.depth.dtype == np.float32 and aligned.depth.shape == (compare.DEFAULT_SIZE,) * 2


def test_alignment_undoes_rotation_scale_and_shift(face):
    depth, marks = face
    reference = align_face(depth, marks)
    moved_depth, moved_marks = warp(depth, marks, angle_deg=14, scale=0.7, shift=(12, -8))
    moved = align_face(moved_depth, moved_marks)
    metrics = compare_pair(reference, moved)
    assert metrics.rms_difference < 0.04
    assert metrics.correlation > 0.98
    # a pure similarity changes nothing in how well the landmarks fit the template
    assert moved.fit_error == pytest.approx(reference.fit_error, abs=1e-3)


def test_large_photo_is_shrunk_before_warping_without_aliasing(face):
    depth, marks = face
    big = cv2.resize(depth, (SIZE * 4, SIZE * 4), interpolation=cv2.INTER_CUBIC)
    aligned_big = align_face(big, marks * 4 + 1.5)
    assert compare_pair(align_face(depth, marks), aligned_big).rms_difference < 0.03


def test_depth_scale_and_shift_do_not_matter(face):
    depth, marks = face
    a = align_face(depth, marks)
    b = align_face(3.0 * depth + 7.0, marks)  # relative depth: unknown scale and shift
    assert compare_pair(a, b).rms_difference < 1e-4


def test_longer_nose_is_more_prominent_and_shows_in_the_difference(face):
    flat = align_face(*synthetic_face(nose_height=0.1))
    long = align_face(*synthetic_face(nose_height=0.5))
    assert nose_prominence(long) > nose_prominence(flat) + 0.1
    metrics = compare_pair(long, flat)
    assert metrics.nose_prominence_a > metrics.nose_prominence_b
    diff = difference_map(long, flat)
    nose_x, nose_y = (int(round(v)) for v in long.landmarks_xy[2])
    assert diff[nose_y - 1, nose_x] > 0.05  # the first face is nearer at its nose


def test_profiles_peak_at_the_nose_and_are_symmetric(face):
    aligned = align_face(*face)
    vertical = nose_profile(aligned)
    horizontal = eye_profile(aligned)
    assert vertical.positions.shape == vertical.values.shape == (aligned.size,)
    finite = np.isfinite(vertical.values)
    peak = vertical.positions[finite][np.argmax(vertical.values[finite])]
    assert abs(peak) < 0.25  # within a quarter IOD of the nose tip
    # horizontal profile through the eyes: eye sockets on both sides, symmetric about the centre
    ok = np.isfinite(horizontal.values)
    offsets = np.linspace(0.05, 0.9, 30)  # in IOD
    left = np.interp(-offsets, horizontal.positions[ok], horizontal.values[ok])
    right = np.interp(offsets, horizontal.positions[ok], horizontal.values[ok])
    assert np.max(np.abs(left - right)) < 0.02


def test_missing_landmarks_are_a_user_error(face):
    with pytest.raises(ComparisonError) as info:
        align_face(face[0], None)
    assert isinstance(info.value, Face3DError)
    assert "no face" in info.value.user_message.lower()


def test_coincident_landmarks_are_a_user_error(face):
    with pytest.raises(ComparisonError):
        align_face(face[0], np.full((5, 2), 50.0, np.float32))


def test_flat_depth_is_a_user_error(face):
    with pytest.raises(ComparisonError):
        align_face(np.ones((SIZE, SIZE), np.float32), face[1])


def test_face_outside_the_depth_map_is_a_user_error(face):
    with pytest.raises(ComparisonError):
        align_face(face[0], face[1] + 1000.0)


@pytest.mark.parametrize(
    "depth, marks",
    [(np.zeros((10,), np.float32), np.zeros((5, 2))), (np.zeros((20, 20), np.float32), np.zeros((4, 2)))],
)
def test_bad_shapes_are_programming_errors(depth, marks):
    with pytest.raises(ValueError):
        align_face(depth, marks)


def test_mask_limits_the_data(face):
    depth, marks = face
    mask = np.zeros_like(depth, dtype=bool)
    mask[:, : SIZE // 2] = True  # only the image-left half
    aligned = align_face(depth, marks, mask=mask)
    assert not aligned.valid[:, -10:].any()
    assert aligned.valid[:, 10:20].any() or aligned.valid[:, 30:40].any()


def test_pair_of_different_sizes_is_rejected(face):
    a = align_face(*face)
    b = align_face(*face, size=64)
    with pytest.raises(ValueError):
        compare_pair(a, b)


# -- compare_faces: the workflow over a depth provider -----------------------------------


def _face_depth(depth: np.ndarray, landmarks: np.ndarray, model: str = "midas_v21_small_256"):
    from face3d_core.faces import Face
    from face3d_core.pipeline import FaceDepth

    x0, y0 = landmarks.min(axis=0) - 40
    x1, y1 = landmarks.max(axis=0) + 40
    face = Face((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), landmarks, 0.99)
    image = np.zeros((*depth.shape, 3), np.uint8)
    h, w = depth.shape
    return FaceDepth(depth, image, (0, 0, w, h), face, model, (w, h), (face,), 0, 0.5)


def _refs(count: int, model: str = "midas_v21_small_256"):
    from face3d_core.pipeline import DepthRef

    return [DepthRef(f"{i + 1:x}" * 64, model, 0) for i in range(count)]


def test_compare_faces_composes_alignment_profiles_and_metrics(face):
    depth, landmarks = face
    other = _face_depth(*synthetic_face(nose_height=0.6))
    depths = {0: _face_depth(depth, landmarks), 1: other}
    refs = _refs(2)
    asked, progress = [], []

    def depth_of(ref, report):
        report(0.5, "half way")
        asked.append(ref)
        return depths[refs.index(ref)]

    result = compare.compare_faces(refs, ["a.jpg", "b.jpg"], depth_of, lambda f, m: progress.append((f, m)))
    assert asked == refs and result.refs == tuple(refs)
    assert result.names == ("a.jpg", "b.jpg") and result.models == (refs[0].model,) * 2
    # each face put in its own 3D frame first (pose-normalised), then the same building blocks
    aligned = [compare.align_face_3d(compare._default_model(ref, depths[i])) for i, ref in enumerate(refs)]
    assert all(a.pose is not None and not a.note for a in result.aligned)
    pair = result.pair(0, 1)
    np.testing.assert_allclose(pair.diff, difference_map(aligned[0], aligned[1]), atol=1e-6)
    assert pair.metrics == compare_pair(aligned[0], aligned[1]) and pair.names == ("a.jpg", "b.jpg")
    assert pair.metrics.nose_prominence_b > pair.metrics.nose_prominence_a  # the longer nose
    swapped = result.pair(1, 0)  # any order: the second minus the first
    np.testing.assert_allclose(swapped.diff, -pair.diff, atol=1e-6)
    assert swapped.metrics.nose_prominence_a == pair.metrics.nose_prominence_b
    np.testing.assert_array_equal(result.nose[1].values, nose_profile(aligned[1]).values)
    # progress: each face's share in order, then the comparison
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and progress[-1] == (0.93, "Comparing profiles...")
    assert progress[0][1] == "Face 1 of 2: half way" and progress[1][1] == "Face 2 of 2: half way"


def test_same_face_turned_20_degrees_compares_as_the_same():
    """Pose-normalised in 3D: the same scan at yaw 0 and 20 correlates >= 0.95; aligned in 2D it did not."""
    from tests.harness import scan_views as sv

    for name in ("lee_perry_smith", "ict"):
        a, b = sv.render_view(name, 0, 0, 250), sv.render_view(name, 20, 0, 250)
        metrics = compare_pair(compare.align_face_3d(a.model("relative")), compare.align_face_3d(b.model("relative")))
        assert metrics.correlation >= 0.95 and metrics.overlap > 0.85, (name, metrics)
        flat = [align_face(v.inverse_depth, v.seeds_uv, mask=np.isfinite(v.depth_mm)) for v in (a, b)]
        assert compare_pair(*flat).correlation < 0.8  # what a 2D alignment made of the same face


def test_scene_photos_turned_20_degrees_compare_as_the_same(scene_photos, yunet_path):
    """End to end: YuNet's landmarks on the textured renders, the depth maps through compare_faces."""
    from face3d_core.faces import detect_faces
    from face3d_core.images import load_image
    from face3d_core.pipeline import FaceDepth
    from face3d_core.reconstruct import ReconstructionParams, reconstruct_face

    depths = []
    for photo, depth_path in scene_photos:
        image = load_image(photo)
        found = detect_faces(image, model_path=yunet_path)[0]
        h, w = image.shape[:2]
        depths.append(
            FaceDepth(np.load(depth_path), image, (0, 0, w, h), found, "midas_v21_small_256", (w, h), (found,), 0)
        )
    refs = _refs(2)
    result = compare.compare_faces(
        refs,
        ["front.jpg", "turned.jpg"],
        lambda ref, report: depths[refs.index(ref)],
        model_of=lambda ref, fd: reconstruct_face(fd, ReconstructionParams(fov_deg=40.1, representation="points")),
    )
    assert result.pair().metrics.correlation >= 0.95, result.pair().metrics
    assert abs(result.aligned[0].pose.yaw_deg) < 6 and 13 < result.aligned[1].pose.yaw_deg < 25


def test_a_face_turned_too_far_is_aligned_in_2d_and_says_so(face):
    from face3d_core.faces import Face
    from face3d_core.pipeline import FaceDepth
    from tests.harness import scan_views as sv

    view = sv.render_view("ict", 60, 0, 250)
    h, w = view.depth_mm.shape
    found = Face.from_landmarks(view.seeds_uv)
    profile = FaceDepth(
        view.inverse_depth, np.zeros((h, w, 3), np.uint8), (0, 0, w, h), found, "m", (w, h), (found,), 0
    )
    depths = [_face_depth(*face), profile]
    refs = _refs(2)
    result = compare.compare_faces(refs, ["a", "side.jpg"], lambda ref, report: depths[refs.index(ref)])
    assert result.aligned[0].pose is not None and result.aligned[1].pose is None
    assert "turned" in result.aligned[1].note and "picture only" in result.aligned[1].note


def test_any_two_of_three_items_compare_and_one_face_under_several_models(face):
    """Items mix faces and models; the pair of any two is computed on demand, a bad pair is refused."""
    from face3d_core.pipeline import DepthRef

    fd = _face_depth(*face)
    sha = "a" * 64
    refs = [DepthRef(sha, "midas_v21_small_256", 0), DepthRef(sha, "dpt_hybrid_384", 0), _refs(1)[0]]
    names = [compare.item_name("a.jpg", ref) for ref in refs]
    assert names[:2] == ["a.jpg · MiDaS small", "a.jpg · DPT-Hybrid"]
    asked = []
    result = compare.compare_faces(refs, names, lambda ref, report: asked.append(ref) or fd)
    assert asked == refs and result.models == ("midas_v21_small_256", "dpt_hybrid_384", "midas_v21_small_256")
    assert len(result.aligned) == 3 and result.names == tuple(names)
    same = result.pair(0, 2)  # the same depth map under two names: no difference
    assert same.names == (names[0], names[2]) and np.nanmax(np.abs(same.diff)) == 0.0
    assert same.metrics.rms_difference == 0.0
    for first, second in ((0, 0), (0, 3), (-1, 1)):
        with pytest.raises(ValueError):
            result.pair(first, second)


def test_compare_faces_refuses_what_cannot_be_compared(face):
    from face3d_core.pipeline import DepthRef

    fd = _face_depth(*face)
    never = []

    def depth_of(ref, report):
        never.append(ref)
        return fd

    for refs in (_refs(1), _refs(7)):
        with pytest.raises(ComparisonError, match="between 2 and 6"):
            compare.compare_faces(refs, ["x"] * len(refs), depth_of)
    no_face = [*_refs(1), DepthRef("f" * 64, "midas_v21_small_256", None)]
    with pytest.raises(ComparisonError, match="No face was found in group.jpg"):
        compare.compare_faces(no_face, ["a.jpg", "group.jpg"], depth_of)
    twice = [*_refs(1), *_refs(1)]
    with pytest.raises(ComparisonError, match="chosen twice"):
        compare.compare_faces(twice, ["a", "b"], depth_of)
    assert never == []  # refused before any depth map was asked for
