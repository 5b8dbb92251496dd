"""Face detection (YuNet on the shared photos), crops (face3d_core.faces) and face masks (face3d_core.masks)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from face3d_core.errors import NoFaceFoundError, WeightsUnavailableError
from face3d_core.faces import (
    LANDMARK_NAMES,
    YUNET_WEIGHTS,
    Face,
    crop_box,
    crop_face,
    detect_faces,
    resolve_yunet_path,
    select_face,
)
from face3d_core.images import load_image
from face3d_core.masks import ellipse_mask, face_ellipse, face_mask, fill_mask_holes, foreground_mask

FACE_PHOTOS = [
    "skimage_astronaut.png",
    "skimage_camera_gray.png",
    "pillow_hopper_128.jpg",
    "pillow_hopper_exif_orientation6.jpg",
    "pillow_hopper_gray_128.jpg",
    "fr_obama_official_portrait.jpg",
    "fr_biden_large_2204px.jpg",
    "fr_two_people.jpg",
    "fr_obama_speech_rgba.png",
    "max_bryan_115px_rgba.png",
    "max_angry_bw.jpg",
    "max_group_meeting.jpg",
    "max_santa_glasses_beard.jpg",
    "interfaces_016.jpg",
    "interfaces_039.jpg",
    "interfaces_051.jpg",
    "interfaces_064.jpg",
    "interfaces_080.jpg",
]
NO_FACE_PHOTOS = ["skimage_coffee_noface.png", "exif_portrait6_noface.jpg"]


def synthetic_face(cx=100.0, cy=90.0, ipd=40.0) -> Face:
    """A frontal face: eyes ``ipd`` apart, mouth 1.1 ipd below the eyes."""
    eye_y, mouth_y = cy - 0.35 * ipd, cy + 0.75 * ipd
    marks = [
        [cx - ipd / 2, eye_y],
        [cx + ipd / 2, eye_y],
        [cx, cy + 0.2 * ipd],
        [cx - 0.4 * ipd, mouth_y],
        [cx + 0.4 * ipd, mouth_y],
    ]
    return Face((cx - ipd, cy - 1.1 * ipd, 2 * ipd, 2.3 * ipd), np.array(marks, np.float32), 0.95)


def face_on_wall_disparity(shape=(200, 200), face: Face | None = None):
    """Relative inverse depth of an ellipsoidal head in front of a flat wall, and the true head mask."""
    face = face or synthetic_face()
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    center, (ax, ay), _ = face_ellipse(face, 0.85)  # the head is a bit smaller than the search ellipse
    r2 = ((x - center[0]) / ax) ** 2 + ((y - center[1]) / ay) ** 2
    head = r2 <= 1.0
    z_wall, z_back, relief = 1500.0, 690.0, 90.0  # mm
    z = np.where(head, z_back - relief * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)), z_wall)
    return (1.0e4 / z).astype(np.float32), head


class TestDetection:
    def test_finds_faces_in_every_face_photo(self, faces_dir, yunet_path):
        for name in FACE_PHOTOS:
            image = load_image(faces_dir / name)
            faces = detect_faces(image, model_path=yunet_path)
            assert faces, name
            h, w = image.shape[:2]
            for face in faces:
                assert 0.0 < face.score <= 1.0
                x0, y0, x1, y1 = face.box_xyxy
                assert -0.2 * (x1 - x0) < x0 < x1 < w + 0.2 * (x1 - x0), name
                assert -0.2 * (y1 - y0) < y0 < y1 < h + 0.2 * (y1 - y0), name
                # landmarks lie in (or very near) their box
                assert np.all(face.landmarks_xy[:, 0] > x0 - 0.1 * (x1 - x0)), name
                assert np.all(face.landmarks_xy[:, 0] < x1 + 0.1 * (x1 - x0)), name
            areas = [f.area for f in faces]
            assert areas == sorted(areas, reverse=True), name

    def test_no_face_in_the_no_face_photos(self, faces_dir, yunet_path):
        for name in NO_FACE_PHOTOS:
            assert detect_faces(load_image(faces_dir / name), model_path=yunet_path) == [], name

    def test_several_faces_largest_first(self, faces_dir, yunet_path):
        two = detect_faces(load_image(faces_dir / "fr_two_people.jpg"), model_path=yunet_path)
        assert len(two) == 2
        assert two[0].area >= two[1].area
        # Obama is on the left, Biden on the right: the two boxes do not overlap
        left, right = sorted(two, key=lambda f: f.box_xywh[0])
        assert left.box_xyxy[2] < right.box_xyxy[0]
        group = detect_faces(load_image(faces_dir / "max_group_meeting.jpg"), model_path=yunet_path)
        assert len(group) >= 4

    def test_frontal_landmarks_are_in_yunet_order(self, faces_dir, yunet_path):
        face = detect_faces(load_image(faces_dir / "skimage_astronaut.png"), model_path=yunet_path)[0]
        right_eye, left_eye, nose, mouth_r, mouth_l = face.landmarks_xy
        assert right_eye[0] < nose[0] < left_eye[0]  # the person's right eye is on the image's left
        assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_r[1], mouth_l[1])
        assert mouth_r[0] < mouth_l[0]
        assert 20 < face.interocular_px < 60  # a 512 px portrait

    def test_exif_rotated_photo_matches_the_upright_one(self, faces_dir, yunet_path):
        upright = detect_faces(load_image(faces_dir / "pillow_hopper_128.jpg"), model_path=yunet_path)[0]
        rotated_image = load_image(faces_dir / "pillow_hopper_exif_orientation6.jpg")
        rotated = detect_faces(rotated_image, model_path=yunet_path)[0]
        np.testing.assert_allclose(rotated.landmarks_xy, upright.landmarks_xy, atol=4.0)

    def test_downscaled_detection_maps_back_to_full_resolution(self, faces_dir, yunet_path):
        """A 5x upscaled photo, shrunk back before detection, gives the original detection x 5."""
        import cv2

        small = load_image(faces_dir / "pillow_hopper_128.jpg")
        big = cv2.resize(small, (640, 640), interpolation=cv2.INTER_CUBIC)
        ref = detect_faces(small, model_path=yunet_path)[0]
        got = detect_faces(big, model_path=yunet_path, max_side=128)[0]
        expected = (ref.landmarks_xy + 0.5) * 5.0 - 0.5  # pixel centres on integers
        np.testing.assert_allclose(got.landmarks_xy, expected, atol=0.1 * got.interocular_px)
        assert got.box_xywh[2] == pytest.approx(ref.box_xywh[2] * 5.0, rel=0.1)

    def test_thread_safe(self, faces_dir, yunet_path):
        images = [load_image(faces_dir / n) for n in ("fr_two_people.jpg", "skimage_astronaut.png")]
        expected = [[f.box_xywh for f in detect_faces(im, model_path=yunet_path)] for im in images]
        results: dict[int, list] = {}
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                results[k] = [
                    [f.box_xywh for f in detect_faces(images[(k + i) % 2], model_path=yunet_path)] for i in range(4)
                ]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for k, runs in results.items():
            for i, boxes in enumerate(runs):
                assert boxes == expected[(k + i) % 2]

    def test_grayscale_input_is_accepted(self, faces_dir, yunet_path):
        gray = load_image(faces_dir / "skimage_astronaut.png")[..., 1]
        assert len(detect_faces(gray, model_path=yunet_path)) == 1

    def test_bad_input(self, yunet_path):
        with pytest.raises(ValueError):
            detect_faces(np.zeros((10, 10, 3), np.float32), model_path=yunet_path)


class TestModelFile:
    def test_pinned_file_is_the_shared_one(self, yunet_path):
        from face3d_core.weights import sha256_file

        assert sha256_file(yunet_path) == YUNET_WEIGHTS.sha256
        assert YUNET_WEIGHTS.url.startswith("https://github.com/opencv/opencv_zoo/")
        assert YUNET_WEIGHTS.url.endswith(YUNET_WEIGHTS.file_name)

    def test_env_var_and_explicit_path(self, yunet_path, monkeypatch, tmp_path):
        monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
        assert resolve_yunet_path() == yunet_path
        with pytest.raises(WeightsUnavailableError):
            resolve_yunet_path(tmp_path / "missing.onnx")

    def test_offline_without_a_file_says_where_to_put_it(self, monkeypatch, tmp_path):
        monkeypatch.setattr("face3d_core.faces.packaged_yunet_path", lambda: tmp_path / "no-package" / "y.onnx")
        monkeypatch.delenv("FACE3D_YUNET_PATH", raising=False)
        monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.delenv("FACE3D_WEIGHTS_DIR", raising=False)
        monkeypatch.setenv("FACE3D_OFFLINE", "1")
        with pytest.raises(WeightsUnavailableError, match=YUNET_WEIGHTS.file_name):
            resolve_yunet_path()

    def test_weights_dir_is_searched(self, yunet_path, monkeypatch, tmp_path):
        (tmp_path / YUNET_WEIGHTS.file_name).write_bytes(yunet_path.read_bytes())
        monkeypatch.setattr("face3d_core.faces.packaged_yunet_path", lambda: tmp_path / "no-package" / "y.onnx")
        monkeypatch.delenv("FACE3D_YUNET_PATH", raising=False)
        monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(tmp_path))
        assert resolve_yunet_path() == tmp_path / YUNET_WEIGHTS.file_name

    def test_a_corrupt_model_file_is_a_user_error(self, tmp_path):
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"not an onnx model")
        with pytest.raises(WeightsUnavailableError, match="could not be loaded"):
            detect_faces(np.zeros((64, 64, 3), np.uint8), model_path=bad)


class TestFaceAndCrop:
    def test_face_normalises_and_round_trips(self):
        face = Face([1, 2, 3, 4], [[1, 2]] * 5, 0.5)
        assert face.box_xywh == (1.0, 2.0, 3.0, 4.0) and face.landmarks_xy.dtype == np.float32
        assert not face.landmarks_xy.flags.writeable
        again = Face.from_dict(face.to_dict())
        np.testing.assert_array_equal(again.landmarks_xy, face.landmarks_xy)
        assert again.box_xywh == face.box_xywh and again.score == face.score
        assert list(face.to_dict()) == ["box_xywh", "landmarks_xy", "score"]
        np.testing.assert_array_equal(face.landmark("nose_tip"), [1, 2])
        assert len(LANDMARK_NAMES) == 5

    def test_crop_keeps_the_mapping_to_image_pixels(self):
        image = np.random.default_rng(0).integers(0, 255, (300, 400, 3)).astype(np.uint8)
        face = synthetic_face(cx=200, cy=150, ipd=40)
        crop = crop_face(image, face, margin=0.5)
        x0, y0, x1, y1 = crop.box_xyxy
        np.testing.assert_array_equal(crop.image_rgb, image[y0:y1, x0:x1])
        np.testing.assert_allclose(crop.to_image_xy(crop.face.landmarks_xy), face.landmarks_xy, atol=1e-4)
        np.testing.assert_allclose(crop.to_crop_xy(face.landmarks_xy), crop.face.landmarks_xy, atol=1e-4)
        side = max(face.box_xywh[2:]) * 2.0  # square, margin 0.5 on each side
        assert abs((x1 - x0) - side) <= 2 and abs((y1 - y0) - side) <= 2
        assert crop.image_size_wh == (400, 300)

    def test_margin_grows_the_crop_and_the_image_clips_it(self):
        face = synthetic_face(cx=30, cy=40, ipd=30)
        small = crop_box(face, (400, 300), 0.1)
        big = crop_box(face, (400, 300), 1.0)
        assert big[2] - big[0] > small[2] - small[0]
        assert big[0] == 0 and big[1] == 0  # clipped at the top-left corner
        with pytest.raises(ValueError):
            crop_box(face, (400, 300), -0.1)

    def test_select_face_errors_state_the_fact_and_leave_the_advice_to_the_caller(self):
        # each caller names what its user can do (a CLI command its own options: test_cli_limits.py)
        with pytest.raises(NoFaceFoundError, match="No face was found") as no_face:
            select_face([], 0)
        with pytest.raises(NoFaceFoundError, match="1 face") as too_few:
            select_face([synthetic_face()], 3)
        for caught in (no_face, too_few):
            assert "mode" not in caught.value.user_message and "--" not in caught.value.user_message


class TestMasks:
    def test_ellipse_mask_area(self):
        mask = ellipse_mask((200, 300), np.array([150.0, 100.0]), (60.0, 40.0), np.radians(30.0))
        assert mask.sum() == pytest.approx(np.pi * 60 * 40, rel=0.01)
        assert mask[100, 150] and not mask[0, 0]

    def test_face_mask_drops_the_wall(self):
        face = synthetic_face()
        disparity, head = face_on_wall_disparity(face=face)
        mask = face_mask(disparity, face)
        assert not (mask & ~head).any()  # no wall pixel
        assert (mask & head).sum() >= 0.97 * head.sum()

    def test_face_mask_without_a_wall_is_the_ellipse(self):
        face = synthetic_face()
        y, x = np.mgrid[0:200, 0:200]
        smooth = (10.0 - 0.001 * ((x - 100.0) ** 2 + (y - 100.0) ** 2)).astype(np.float32)
        ellipse = face_mask(None, face, shape_hw=(200, 200))
        mask = face_mask(smooth, face)
        assert (mask == ellipse).mean() > 0.99

    def test_face_mask_ignores_invalid_depth(self):
        face = synthetic_face()
        disparity, head = face_on_wall_disparity(face=face)
        disparity[80:85, 95:105] = np.nan
        mask = face_mask(disparity, face)
        assert not mask[80:85, 95:105].any()
        assert (mask & head).sum() >= 0.95 * head.sum()

    def test_foreground_mask_finds_the_near_object(self):
        disparity = np.full((100, 120), 1.0, np.float32)
        disparity[30:70, 40:90] = 3.0
        disparity[5:8, 5:8] = 3.0  # a small near blob: not the largest region
        mask = foreground_mask(disparity)
        expected = np.zeros_like(mask)
        expected[30:70, 40:90] = True
        np.testing.assert_array_equal(mask, expected)

    def test_fill_mask_holes(self):
        ring = np.zeros((20, 20), bool)
        ring[5:15, 5:15] = True
        ring[8:12, 8:12] = False
        ring[0:3, 0:3] = False
        filled = fill_mask_holes(ring)
        assert filled[8:12, 8:12].all() and not filled[0:3, 0:3].any() and filled.sum() == 100


def test_a_face_in_a_resized_image_keeps_its_pixel_centres():
    """Resizing by s maps p to (p + 0.5) * s - 0.5 (pixel centres on integers), box and landmarks alike."""
    face = Face((10.0, 20.0, 40.0, 50.0), np.array([[15.0, 30.0], [45.0, 30.0], [30.0, 45.0], [20, 60], [40, 60]]), 0.9)
    half = face.resized((0.5, 0.25))
    np.testing.assert_allclose(half.landmarks_xy, (face.landmarks_xy + 0.5) * [0.5, 0.25] - 0.5, atol=1e-5)
    np.testing.assert_allclose(half.box_xywh, (10 * 0.5 - 0.25, 20 * 0.25 - 0.375, 20.0, 12.5))
    back = half.resized((2.0, 4.0))
    np.testing.assert_allclose(back.landmarks_xy, face.landmarks_xy, atol=1e-4)
    assert back.score == face.score
