"""Person boxes from faces, for photos given without ``bbox`` (``--auto-boxes``).

OpenCV's frontal-face Haar cascade (its model file ships inside the ``opencv-python``
wheel, so nothing is downloaded): one box per face, grown to head and shoulders, people ordered
left to right as the voices are. Without the flag the official rule holds (no boxes: the left
and right halves), so results stay the official ones for the same input.
"""

from __future__ import annotations

import numpy as np

from ..errors import MultiTalkInputError

# a face box (x, y, w, h) grown to the head and shoulders, in face widths/heights around it
GROW_LEFT, GROW_RIGHT, GROW_UP, GROW_DOWN = 0.75, 0.75, 0.5, 1.5


def face_boxes(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """``(x, y, w, h)`` of each frontal face in a uint8 RGB image, left to right."""
    try:
        import cv2
    except ImportError:
        raise MultiTalkInputError(
            "--auto-boxes needs OpenCV: pip install 'multitalk[faces]' (or give each person's bbox)"
        ) from None
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    smallest = max(24, min(gray.shape) // 20)
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest))
    return sorted((tuple(int(v) for v in face) for face in found), key=lambda face: face[0])


def person_boxes(image: np.ndarray, people: int) -> list[list[int]]:
    """One official ``[top, left, bottom, right]`` box per person, from their faces, left to right."""
    faces = face_boxes(image)
    if len(faces) != people:
        raise MultiTalkInputError(
            f"found {len(faces)} face(s) for {people} voice(s); give each person's bbox "
            "(`multitalk masks INPUT.json -o preview.png` shows them)"
        )
    height, width = image.shape[:2]
    boxes = []
    for x, y, w, h in faces:
        top, bottom = max(0, round(y - GROW_UP * h)), min(height, round(y + h + GROW_DOWN * h))
        left, right = max(0, round(x - GROW_LEFT * w)), min(width, round(x + w + GROW_RIGHT * w))
        boxes.append([top, left, bottom, right])
    return boxes
