"""The expensive step's composition (face3d_core.pipeline), with a test double for the network."""

from __future__ import annotations

import numpy as np
import pytest

from face3d_core.errors import NoFaceFoundError, UnknownModelError
from face3d_core.faces import Face, crop_face, detect_faces
from face3d_core.images import load_image
from face3d_core.pipeline import DepthRef, FaceDepth, compute_face_depth


class RecordingEstimator:
    """Stands in for the depth network: returns the image's mean intensity per pixel, records inputs."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        self.inputs.append(image_rgb)
        return image_rgb.astype(np.float32).mean(axis=2)


def test_crop_around_the_largest_face(faces_dir, yunet_path, monkeypatch):
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
    image = load_image(faces_dir / "fr_two_people.jpg")
    est = RecordingEstimator()
    fd = compute_face_depth(image, estimator=est, margin=0.4)
    assert isinstance(fd, FaceDepth) and not fd.full_frame
    faces = detect_faces(image)
    expected = crop_face(image, faces[0], 0.4)
    assert fd.crop_box_xyxy == expected.box_xyxy
    np.testing.assert_array_equal(fd.image_rgb, expected.image_rgb)
    np.testing.assert_array_equal(est.inputs[0], expected.image_rgb)  # the network saw the crop only
    assert fd.depth_rel.shape == fd.image_rgb.shape[:2] and fd.depth_rel.dtype == np.float32
    np.testing.assert_allclose(fd.depth_rel, expected.image_rgb.mean(axis=2), rtol=1e-6)
    # the face is in crop coordinates; adding the crop offset gives the detection in the photo
    x0, y0 = fd.crop_box_xyxy[:2]
    np.testing.assert_allclose(fd.face.landmarks_xy + [x0, y0], faces[0].landmarks_xy, atol=1e-4)
    assert fd.image_size_wh == (image.shape[1], image.shape[0])
    assert len(fd.faces) == 2 and fd.face_index == 0 and fd.margin == 0.4


def test_second_face_and_out_of_range(faces_dir, yunet_path, monkeypatch):
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
    image = load_image(faces_dir / "fr_two_people.jpg")
    first = compute_face_depth(image, estimator=RecordingEstimator(), face_index=0)
    second = compute_face_depth(image, estimator=RecordingEstimator(), face_index=1)
    assert first.crop_box_xyxy != second.crop_box_xyxy
    with pytest.raises(NoFaceFoundError, match="2 face"):
        compute_face_depth(image, estimator=RecordingEstimator(), face_index=2)


def test_full_frame_is_the_whole_image_without_detection(monkeypatch):
    def no_detection(*args, **kwargs):
        raise AssertionError("full-frame mode must not detect faces")

    monkeypatch.setattr("face3d_core.pipeline.detect_faces", no_detection)
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3)).astype(np.uint8)
    est = RecordingEstimator()
    fd = compute_face_depth(image, estimator=est, face_index=None)
    assert fd.full_frame and fd.face is None and fd.crop_box_xyxy == (0, 0, 80, 60)
    assert est.inputs[0] is image or np.array_equal(est.inputs[0], image)
    assert fd.faces == () and fd.margin is None


def test_no_face_raises_a_user_error_and_runs_nothing(yunet_path, monkeypatch):
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
    blank = np.full((120, 160, 3), 128, np.uint8)
    est = RecordingEstimator()
    with pytest.raises(NoFaceFoundError, match="No face was found") as info:
        compute_face_depth(blank, estimator=est)
    assert info.value.title == "No face found"  # what to do instead is each caller's (test_cli_limits.py)
    assert est.inputs == []  # the network is not run for nothing


def test_given_faces_skip_detection(monkeypatch):
    monkeypatch.setattr("face3d_core.pipeline.detect_faces", lambda *a, **k: pytest.fail("detected again"))
    image = np.zeros((100, 100, 3), np.uint8)
    marks = np.array([[45, 48], [55, 48], [50, 54], [46, 58], [54, 58]], np.float32)
    face = Face((40, 40, 20, 24), marks, 0.9)
    fd = compute_face_depth(image, estimator=RecordingEstimator(), faces=[face], margin=0.5)
    assert fd.crop_box_xyxy == (26, 28, 74, 76)
    np.testing.assert_allclose(fd.face.landmarks_xy[0], [45 - 26, 48 - 28])


def test_estimator_returning_a_wrong_shape_is_caught():
    class Broken:
        def predict(self, image_rgb):
            return np.zeros((3, 3), np.float32)

    with pytest.raises(ValueError, match="shape"):
        compute_face_depth(np.zeros((20, 30, 3), np.uint8), estimator=Broken(), face_index=None)


def test_rejects_non_rgb_input():
    with pytest.raises(ValueError):
        compute_face_depth(np.zeros((20, 30), np.uint8), estimator=RecordingEstimator(), face_index=None)


# -- DepthRef: which depth map, validated once ---------------------------------------------

SHA = "0123456789abcdef" * 4


def test_depth_ref_accepts_valid_values_and_round_trips():
    for face in (None, 0, 3):
        ref = DepthRef(SHA, "midas_v21_small_256", face)
        assert DepthRef.from_dict(ref.to_dict()) == ref
        assert ref.to_dict() == {"sha": SHA, "model": "midas_v21_small_256", "face": face, "precision": "fp32"}
    assert len({DepthRef(SHA, "midas_v21_small_256", 0), DepthRef(SHA, "midas_v21_small_256", 0)}) == 1
    fast = DepthRef(SHA, "midas_v21_small_256", 0, "bf16")
    assert DepthRef.from_dict(fast.to_dict()) == fast != DepthRef(SHA, "midas_v21_small_256", 0)
    # what browsers and jobs sent before the fast mode existed is an exact (fp32) depth map
    assert DepthRef.from_dict({"sha": SHA, "model": "midas_v21_small_256", "face": 0}).precision == "fp32"
    assert fast.model_variant == "midas_v21_small_256.bf16"
    assert DepthRef(SHA, "midas_v21_small_256", 0).model_variant == "midas_v21_small_256"


@pytest.mark.parametrize("precision", ["fp64", "BF16", "", None, 16, ["bf16"], "bf16 "])
def test_depth_ref_rejects_unknown_precisions(precision):
    with pytest.raises(ValueError):
        DepthRef(SHA, "midas_v21_small_256", 0, precision)
    assert DepthRef.from_dict({"sha": SHA, "model": "midas_v21_small_256", "face": 0, "precision": precision}) is None


@pytest.mark.parametrize("sha", ["", "A" * 64, "a" * 63, "../../etc/passwd", None, 5])
def test_depth_ref_rejects_malformed_photo_keys(sha):
    with pytest.raises(ValueError):
        DepthRef(sha, "midas_v21_small_256", 0)
    assert DepthRef.from_dict({"sha": sha, "model": "midas_v21_small_256", "face": 0}) is None


@pytest.mark.parametrize("face", [-1, 1.0, "0", True, [0]])
def test_depth_ref_rejects_bad_face_indices(face):
    with pytest.raises(ValueError):
        DepthRef(SHA, "midas_v21_small_256", face)
    assert DepthRef.from_dict({"sha": SHA, "model": "midas_v21_small_256", "face": face}) is None


@pytest.mark.parametrize("model", ["no_such_model", None, ["midas_v21_small_256"], ""])
def test_depth_ref_rejects_unregistered_models_as_user_errors(model):
    with pytest.raises(UnknownModelError):
        DepthRef(SHA, model, 0)
    assert DepthRef.from_dict({"sha": SHA, "model": model}) is None


@pytest.mark.parametrize("junk", [None, "x", 5, ["sha"], {"model": "midas_v21_small_256"}])
def test_depth_ref_from_junk_is_none(junk):
    assert DepthRef.from_dict(junk) is None


# -- the working copy: the cost of a photo does not grow with its pixel count ---------------------


def test_a_large_photo_is_worked_on_as_a_working_copy_of_2048_px():
    from face3d_core.pipeline import WORK_MAX_SIDE

    image = np.full((6600, 6000, 3), 128, np.uint8)  # inside the 40 MP limit
    est = RecordingEstimator()
    fd = compute_face_depth(image, estimator=est, face_index=None)
    assert WORK_MAX_SIDE == 2048
    assert est.inputs[0].shape == (2048, 1862, 3)  # the network saw the working copy
    assert fd.depth_rel.shape == (2048, 1862) and fd.image_rgb.shape == (2048, 1862, 3)
    assert fd.crop_box_xyxy == (0, 0, 6000, 6600) and fd.image_size_wh == (6000, 6600)  # original pixels
    assert fd.working_copy and fd.box_size_wh == (6000, 6600)
    assert fd.depth_rel.nbytes + fd.image_rgb.nbytes < 30e6  # the cache entry, whatever the photo's size
    small = compute_face_depth(image[:500, :400], estimator=est, face_index=None)
    assert small.depth_rel.shape == (500, 400) and not small.working_copy


def test_a_working_copy_of_a_face_crop_keeps_the_face_and_the_camera(faces_dir, yunet_path, monkeypatch):
    """The same face from a capped crop: landmarks follow the resize, and the 3D face has the same shape."""
    from face3d_core.reconstruct import ReconstructionParams, reconstruct_face
    from tests.doubles import FakeEstimator

    monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
    image = load_image(faces_dir / "skimage_astronaut.png")
    face = detect_faces(image)[0]
    full = compute_face_depth(image, estimator=FakeEstimator(), faces=[face], max_side=4096)
    capped = compute_face_depth(image, estimator=FakeEstimator(), faces=[face], max_side=100)
    assert not full.working_copy and capped.working_copy
    assert capped.crop_box_xyxy == full.crop_box_xyxy and max(capped.depth_rel.shape) == 100
    bw, bh = capped.box_size_wh
    sx, sy = capped.depth_rel.shape[1] / bw, capped.depth_rel.shape[0] / bh
    expected = (full.face.landmarks_xy + 0.5) * [sx, sy] - 0.5  # pixel centres on integers
    np.testing.assert_allclose(capped.face.landmarks_xy, expected, atol=1e-3)
    params = ReconstructionParams(smoothing_sigma=0.0)
    a, b = reconstruct_face(full, params), reconstruct_face(capped, params)
    assert a.scale_source == b.scale_source == "eyes"
    eyes_a = np.linalg.norm(a.landmarks_xyz[0] - a.landmarks_xyz[1])
    eyes_b = np.linalg.norm(b.landmarks_xyz[0] - b.landmarks_xyz[1])
    assert abs(eyes_a - 63.0) < 0.5 and abs(eyes_b - 63.0) < 0.5
    size_a, size_b = np.ptp(a.points_xyz, axis=0), np.ptp(b.points_xyz, axis=0)
    np.testing.assert_allclose(size_b, size_a, rtol=0.08)  # the same face in millimetres
