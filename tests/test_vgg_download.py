"""The perceptual loss's VGG weights by name (loss.vgg_weights = "" / "vgg16" / "vgg19"): torchvision's
file fetched through pretrained.download into the weights cache, from a server on 127.0.0.1
(no test reaches the internet); offline, one line with the URL and the path; a file still works."""

import hashlib
import pathlib
import socket
import threading

import numpy as np
import pytest

from tests.test_pretrained_download import _Server
from vsr_jax import vgg_weights
from vsr_jax.errors import UserError
from vsr_jax.pretrained import download

SMALL = pathlib.Path(__file__).parent / "data" / "pth" / "vgg16_small.pth"  # torchvision layout, narrow, by torch


@pytest.fixture
def cache(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    d = tmp_path / "weights"
    monkeypatch.setenv(download.ENV_VAR, str(d))
    return d


@pytest.fixture
def vgg16_server(monkeypatch):
    """Serves the small VGG16 .pth under a torchvision-style name (vgg16-<sha256 prefix>.pth)."""
    data = SMALL.read_bytes()
    srv = _Server(data, f"vgg16-{hashlib.sha256(data).hexdigest()[:8]}.pth")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setitem(vgg_weights.TORCH_URLS, 16, srv.url)
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _closed_url(name: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def test_a_name_fetches_torchvisions_file_once_then_reads_the_cache(cache, vgg16_server):
    expected, mode = vgg_weights.load_vgg_params(SMALL, 16)
    params, input_mode = vgg_weights.load_vgg_params("vgg16", 16)
    assert input_mode == mode == "torch"
    assert set(params) == set(expected) and len(params) == 13
    for layer in expected:
        np.testing.assert_array_equal(params[layer]["kernel"], expected[layer]["kernel"])
        np.testing.assert_array_equal(params[layer]["bias"], expected[layer]["bias"])
    cached = cache / vgg16_server.name
    assert cached.read_bytes() == SMALL.read_bytes()
    assert [p for p, _, status in vgg16_server.log] == [f"/files/{vgg16_server.name}"]
    # "" is vgg{depth}; the second read is the cached file, without a request
    again, _ = vgg_weights.load_vgg_params("", 16)
    np.testing.assert_array_equal(again["conv5_3"]["kernel"], expected["conv5_3"]["kernel"])
    assert len(vgg16_server.log) == 1


def test_offline_is_one_line_with_the_url_and_the_path_and_a_file_still_works(cache, monkeypatch):
    url = _closed_url("vgg19-dcbb9e9d.pth")
    monkeypatch.setitem(vgg_weights.TORCH_URLS, 19, url)
    for setting in ("", "vgg19"):
        with pytest.raises(UserError) as e:
            vgg_weights.load_vgg_params(setting, 19)
        msg = str(e.value)
        assert "\n" not in msg
        assert msg.startswith(f"VGG19 weights for the perceptual loss: cannot download {url} (")
        assert f"put it at {cache / 'vgg19-dcbb9e9d.pth'}; or give a weight file of your own with " in msg
        assert msg.endswith("--config.loss.vgg_weights=FILE (Keras .h5, torchvision .pth or vsr_jax .npz)")
    assert not list(cache.glob("*"))  # no partial file left
    params, _ = vgg_weights.load_vgg_params(str(SMALL), 16)  # a file needs no network
    assert len(params) == 13


def test_a_file_named_like_the_name_is_read_as_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vgg16").write_bytes(SMALL.read_bytes())
    monkeypatch.setitem(vgg_weights.TORCH_URLS, 16, _closed_url("vgg16-397923af.pth"))
    params, _ = vgg_weights.load_vgg_params("vgg16", 16)
    assert len(params) == 13


def test_the_trainer_takes_a_name_in_loss_vgg_weights(cache, monkeypatch):
    from vsr_jax import config_lib, train_step

    url = _closed_url("vgg19-dcbb9e9d.pth")
    monkeypatch.setitem(vgg_weights.TORCH_URLS, 19, url)
    config = config_lib.base_config()
    config.loss.perceptual_weight = 1.0
    config.loss.vgg_weights = "vgg19"
    with pytest.raises(UserError, match=f"^VGG19 weights for the perceptual loss: cannot download {url} "):
        train_step.build_perceptual(config)
