"""Prompt images for play and rollouts: PNG/JPEG bytes checked from their header, then fitted
to the models' frame (center crop to 16:9, area resize), as curation fits video frames."""

from __future__ import annotations

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
# JPEG start-of-frame markers carry the size; C4 (Huffman), C8 (reserved), CC (arithmetic) do not.
JPEG_SIZE_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
JPEG_BARE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
DEFAULT_MAX_PIXELS = 4096 * 4096


class UnsupportedImage(ValueError):
    """The bytes are not a PNG or JPEG that can be decoded."""


class ImageTooLarge(ValueError):
    """The image has more pixels than allowed (a small file can decode to gigabytes)."""


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from a PNG or JPEG header, without decoding the pixels."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(JPEG_SIGNATURE):
        at = 2
        while at + 9 <= len(data):
            if data[at] != 0xFF:
                break
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte before a marker
                at += 1
            elif marker in JPEG_SIZE_MARKERS:
                height = int.from_bytes(data[at + 5 : at + 7], "big")
                return int.from_bytes(data[at + 7 : at + 9], "big"), height
            elif marker in JPEG_BARE_MARKERS:
                at += 2
            else:
                at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    raise UnsupportedImage("not a PNG or JPEG image (its first bytes are neither signature)")


def fit_to_frame(image: np.ndarray, frame_shape: tuple[int, int, int]) -> np.ndarray:
    """An (H, W, 3) image center-cropped to the frame's aspect ratio and area-resized to it."""
    _, frame_h, frame_w = frame_shape
    height, width = image.shape[:2]
    if width * frame_h > height * frame_w:  # wider than the frame: keep the middle columns
        crop_w = max(1, round(height * frame_w / frame_h))
        left = (width - crop_w) // 2
        image = image[:, left : left + crop_w]
    else:
        crop_h = max(1, round(width * frame_h / frame_w))
        top = (height - crop_h) // 2
        image = image[top : top + crop_h]
    return cv2.resize(image, (frame_w, frame_h), interpolation=cv2.INTER_AREA)


def decode_prompt_image(
    data: bytes, frame_shape: tuple[int, int, int], max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """PNG/JPEG bytes -> RGB uint8 (H, W, 3) at the models' frame size.

    The size is checked from the header before decoding, so a decompression bomb costs nothing.
    """
    width, height = image_size(data)
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise UnsupportedImage("the PNG/JPEG header is valid but the image does not decode")
    return fit_to_frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), frame_shape)
