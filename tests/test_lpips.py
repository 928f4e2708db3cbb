"""LPIPS in JAX against the `lpips` package (torch) on seeded weights and images, and tLP."""

import json
import pathlib

import numpy as np
import pytest

from tests.lpips_seeded import seeded_images, seeded_state_dicts
from vsr_jax import errors, lpips

REFERENCE = json.loads((pathlib.Path(__file__).parent / "data" / "lpips_reference.json").read_text())


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package(net):
    weights = lpips.from_state_dicts(*seeded_state_dicts(net), net)
    x, y = seeded_images()
    d = np.asarray(lpips.distance(weights, x, y, net))
    np.testing.assert_allclose(d, REFERENCE["nets"][net], rtol=2e-4, atol=1e-7)
    assert np.asarray(lpips.distance(weights, x, x, net)).max() == 0.0


def test_npz_round_trip_and_tlp(tmp_path):
    weights = lpips.from_state_dicts(*seeded_state_dicts("alex"), "alex")
    lpips.save_lpips(str(tmp_path / "alex.npz"), weights, "alex")
    loaded, net = lpips.load_lpips(str(tmp_path / "alex.npz"))
    assert net == "alex"
    x, y = seeded_images()
    np.testing.assert_allclose(lpips.distance(loaded, x, y), lpips.distance(weights, x, y), rtol=1e-6)
    clip = (np.repeat(x[:1], 4, axis=0) * 255).astype(np.uint8)
    assert lpips.tlp(loaded, clip, clip) == 0.0
    flicker = clip.copy()
    flicker[1::2] = (y[2] * 255).astype(np.uint8)  # every other frame replaced: LPIPS jumps between frames
    assert lpips.tlp(loaded, flicker, clip) > 1.0


def test_missing_or_wrong_weights_are_user_errors(tmp_path):
    with pytest.raises(errors.UserError, match="alex.pth / vgg.pth"):
        lpips.load_lpips(str(tmp_path / "nope.npz"))
    lin, backbone = seeded_state_dicts("vgg")
    with pytest.raises(errors.UserError, match="is it the alex file"):
        lpips.from_state_dicts(lin, seeded_state_dicts("alex")[1], "alex")
