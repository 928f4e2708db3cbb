"""`frame_windows` gives BasicSR's `generate_frame_indices` (fixture made by its own code)."""

import json
import pathlib

import numpy as np
import pytest

from vsr_jax.models import frame_windows

CASES = json.loads((pathlib.Path(__file__).parent / "data/published/frame_indices.json").read_text())


def test_equals_basicsr_on_every_case():
    assert len(CASES) == 96
    for case in CASES:
        got = frame_windows.window_indices(case["total"], case["num_frames"], case["padding"])
        np.testing.assert_array_equal(got, np.array(case["indices"]), err_msg=str(case))


def test_short_clips_are_clamped_and_windows_gathered():
    # 3 frames, 7-frame windows: BasicSR's indices would leave the clip
    rows = frame_windows.window_indices(3, 7, "reflection_circle")
    assert rows.min() == 0 and rows.max() == 2 and rows.shape == (3, 7)
    np.testing.assert_array_equal(rows[:, 3], [0, 1, 2])  # the centre is the frame itself
    clip = np.arange(2 * 5).reshape(2, 5, 1, 1, 1).astype(np.float32)
    win = np.asarray(frame_windows.gather_windows(clip, 3, "replicate"))
    assert win.shape == (2, 5, 3, 1, 1, 1)
    want = 5 + np.array([[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 4]])
    np.testing.assert_array_equal(win[1, :, :, 0, 0, 0], want)
    with pytest.raises(ValueError, match="odd"):
        frame_windows.frame_indices(0, 5, 4, "replicate")
    with pytest.raises(ValueError, match="padding must be one of"):
        frame_windows.frame_indices(0, 5, 3, "zeros")
