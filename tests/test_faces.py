"""Person boxes from faces (--auto-boxes) on a real photo that ships in a package: scikit-image's
astronaut, twice side by side (the second mirrored) for two people."""

import numpy as np
import pytest

from multitalk.cli import main
from multitalk.errors import MultiTalkInputError
from multitalk.media import read_image, write_image, write_wav

cv2 = pytest.importorskip("cv2", reason="OpenCV is missing or lacks libGL: pip install 'multitalk[faces]'")


@pytest.fixture(scope="module")
def two_astronauts():
    from skimage import data

    one = data.astronaut()
    return np.concatenate([one, one[:, ::-1]], axis=1)  # 512 x 1024, a face in each half


def test_each_face_becomes_a_head_and_shoulders_box_left_to_right(two_astronauts):
    from multitalk.conditioning.faces import face_boxes, person_boxes

    faces = face_boxes(two_astronauts)
    assert len(faces) == 2 and faces[0][0] < 512 <= faces[1][0]
    boxes = person_boxes(two_astronauts, 2)
    for (x, y, w, h), (top, left, bottom, right) in zip(faces, boxes):
        assert top < y and bottom > y + h and left < x and right > x + w  # the face inside, grown
        assert 0 <= top < bottom <= 512 and 0 <= left < right <= 1024
    assert boxes[0][3] <= boxes[1][1] + 200  # the first person is the left one
    with pytest.raises(MultiTalkInputError, match="found 2 face"):
        person_boxes(two_astronauts, 3)


def test_masks_and_generate_take_auto_boxes(two_astronauts, tmp_path, capsys):
    from multitalk.random_pipeline import random_pipeline

    write_image(tmp_path / "two.png", two_astronauts)
    assert main(["masks", "--image", str(tmp_path / "two.png"), "--auto-boxes", "-o", str(tmp_path / "m.png")]) == 0
    preview = read_image(tmp_path / "m.png")
    assert preview.shape[0] > 0
    for i in (1, 2):
        write_wav(
            tmp_path / f"p{i}.wav", (0.1 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 200 * i)).astype(np.float32)
        )
    random_pipeline("tiny", buckets=[[64, 128]]).save_pretrained(tmp_path / "tiny")
    args = ["generate", "--image", str(tmp_path / "two.png"), "--audio", str(tmp_path / "p1.wav")]
    args += ["--audio", str(tmp_path / "p2.wav"), "--prompt", "two astronauts talk", "--auto-boxes"]
    args += ["--model", str(tmp_path / "tiny"), "--mode", "clip", "--num-frames", "5", "--num-inference-steps", "1"]
    assert main([*args, "--quiet", "-o", str(tmp_path / "v.mp4")]) == 0
    assert (tmp_path / "v.mp4").is_file()
    three = [*args, "--audio", str(tmp_path / "p1.wav"), "--quiet", "-o", str(tmp_path / "w.mp4")]
    assert main(three) == 2 and "found 2 face(s) for 3 voice(s)" in capsys.readouterr().err
