"""Prompt images: fitted to the models' frame, and checked from their header before decoding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jobs.serving.prompt import ImageTooLarge, UnsupportedImage, decode_prompt_image, image_size

FRAME_SHAPE = (3, 90, 160)


def png_bytes(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def test_prompt_image_is_center_cropped_to_16_9_and_resized():
    wide = np.zeros((100, 400, 3), np.uint8)  # 4:1, so the sides go
    wide[:, :100] = (0, 0, 255)  # red (BGR) on the left quarter: cropped away
    wide[:, 100:300] = (0, 255, 0)  # green middle: what remains
    frame = decode_prompt_image(png_bytes(wide), FRAME_SHAPE)
    assert frame.shape == (90, 160, 3)
    assert (frame[:, :, 1] > 200).mean() > 0.95 and frame[:, :, 0].max() < 30  # RGB, green

    tall = np.zeros((900, 160, 3), np.uint8)
    tall[440:460] = 255  # the crop keeps rows 405..494
    frame = decode_prompt_image(cv2.imencode(".jpg", tall)[1].tobytes(), FRAME_SHAPE)
    assert frame.shape == (90, 160, 3)
    assert frame[45].mean() > 200 and frame[0].mean() < 30  # the middle band, centered


def test_prompt_image_limits_are_checked_before_decoding():
    big = png_bytes(np.zeros((1200, 1000, 3), np.uint8))
    assert image_size(big) == (1000, 1200)
    assert image_size(cv2.imencode(".jpg", np.zeros((33, 77, 3), np.uint8))[1].tobytes()) == (
        77,
        33,
    )
    with pytest.raises(ImageTooLarge, match="1000x1200"):
        decode_prompt_image(big, FRAME_SHAPE, max_pixels=1_000_000)
    with pytest.raises(UnsupportedImage):
        decode_prompt_image(b"GIF89a not what we take", FRAME_SHAPE)
    with pytest.raises(UnsupportedImage):  # a valid header over garbage
        decode_prompt_image(big[:40] + b"\0" * 100, FRAME_SHAPE)
