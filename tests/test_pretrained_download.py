"""vsr_jax.pretrained.download against a local HTTP server on 127.0.0.1 (no test reaches the internet)."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import socket
import threading

import numpy as np
import pytest

from vsr_jax.errors import UserError
from vsr_jax.pretrained import download

SIZE = 300_000
CUT_AT = 70_000


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        body, status, extra = srv.data, 200, {}
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and srv.honour_range:
            start = int(m.group(1))
            body, status = srv.data[start:], 206
            extra["Content-Range"] = f"bytes {start}-{len(srv.data) - 1}/{len(srv.data)}"
        if self.path == "/redirect/" + srv.name:  # as GitHub release links do
            srv.log.append((self.path, rng, 302))
            self.send_response(302)
            self.send_header("Location", "/files/" + srv.name)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first = not any(s != 302 for _, _, s in srv.log)
        srv.log.append((self.path, rng, status))
        if self.path != "/files/" + srv.name:
            self.send_error(404, "Not Found")
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if first and srv.cut_after is not None:
            self.wfile.write(body[: srv.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: bytes, name: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data, self.name = data, name
        self.log: list[tuple[str, str | None, int]] = []
        self.cut_after: int | None = None
        self.honour_range = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/files/{self.name}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv(download.ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def blob() -> bytes:
    return np.random.default_rng(0).bytes(SIZE)


@pytest.fixture
def server(blob):
    digest = hashlib.sha256(blob).hexdigest()
    srv = _Server(blob, f"weights_x4-{digest[:8]}.pth")
    srv.sha256 = digest
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _leftovers(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def test_download_then_cache_without_request(server, blob, tmp_path):
    cache = tmp_path / "cache"
    path = download.fetch(server.url, sha256=server.sha256, cache_dir=cache, progress=False)
    assert path == str(cache / server.name)
    assert open(path, "rb").read() == blob
    assert _leftovers(cache) == [server.name]  # no temporary file left
    assert len(server.log) == 1 and server.log[0][1] is None
    again = download.fetch(server.url, sha256=server.sha256, cache_dir=cache, progress=False)
    assert again == path and len(server.log) == 1  # served from the cache, no request


def test_cache_dir_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv(download.ENV_VAR, str(tmp_path / "env"))
    path = download.fetch(server.url, sha256=server.sha256, progress=False)
    assert path == str(tmp_path / "env" / server.name)
    assert download.weights_dir() == str(tmp_path / "env")
    monkeypatch.delenv(download.ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.weights_dir() == str(tmp_path / "home" / ".cache" / "vsr_jax" / "weights")


def test_progress_bar_on_stderr(server, tmp_path, capsys):
    download.fetch(server.url, sha256=server.sha256, cache_dir=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert server.name in err and "100%" in err


def test_resume_after_cut_with_range(server, blob, tmp_path):
    server.cut_after = CUT_AT
    path = download.fetch(server.url, sha256=server.sha256, cache_dir=tmp_path, progress=False)
    assert open(path, "rb").read() == blob
    assert server.log[0] == (server.log[0][0], None, 200)
    assert len(server.log) == 2
    _, rng, status = server.log[1]
    assert rng == f"bytes={CUT_AT}-" and status == 206
    assert _leftovers(tmp_path) == [server.name]


def test_restart_when_server_ignores_range(server, blob, tmp_path):
    server.cut_after, server.honour_range = CUT_AT, False
    path = download.fetch(server.url, sha256=server.sha256, cache_dir=tmp_path, progress=False)
    assert open(path, "rb").read() == blob  # started again from zero, not appended
    assert [(r, s) for _, r, s in server.log] == [(None, 200), (f"bytes={CUT_AT}-", 200)]
    assert _leftovers(tmp_path) == [server.name]


def test_hash_mismatch_keeps_nothing(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(UserError) as e:
        download.fetch(server.url, sha256=wrong, cache_dir=tmp_path, progress=False)
    msg = _one_line(e)
    target = str(tmp_path / server.name)
    assert server.url in msg and wrong in msg and server.sha256 in msg and target in msg
    assert _leftovers(tmp_path) == []  # neither the file nor a temporary


def test_hash_prefix(server, blob, tmp_path):
    # from the file name (name-<first 8 hex digits>.pth) ...
    assert download.hash_prefix_from_name(server.name) == server.sha256[:8]
    assert download.hash_prefix_from_name("vgg19-dcbb9e9d.pth") == "dcbb9e9d"
    assert download.hash_prefix_from_name("RealESRGAN_x4plus.pth") is None
    assert download.hash_prefix_from_name("realesr-general-x4v3.pth") is None
    path = download.fetch(server.url, cache_dir=tmp_path / "a", progress=False)
    assert open(path, "rb").read() == blob
    # ... or given; a wrong prefix is refused and nothing is kept
    download.fetch(server.url, hash_prefix=server.sha256[:10].upper(), cache_dir=tmp_path / "b", progress=False)
    bad = "ffffffff" if not server.sha256.startswith("ffffffff") else "00000000"
    with pytest.raises(UserError) as e:
        download.fetch(server.url, hash_prefix=bad, cache_dir=tmp_path / "c", progress=False)
    msg = _one_line(e)
    assert bad in msg and server.sha256 in msg and str(tmp_path / "c" / server.name) in msg
    assert _leftovers(tmp_path / "c") == []


def test_no_hash_refused_unless_allowed(server, tmp_path):
    url = server.url.replace(server.name, "plain.pth")
    with pytest.raises(ValueError, match="sha256"):
        download.fetch(url, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="64 hex"):
        download.fetch(url, sha256="abc", cache_dir=tmp_path, progress=False)
    assert server.log == []


def test_http_error_one_line(server, tmp_path):
    url = server.url.replace(server.name, "missing-0123abcd.pth")
    with pytest.raises(UserError) as e:
        download.fetch(url, cache_dir=tmp_path, progress=False)
    msg = _one_line(e)
    target = str(tmp_path / "missing-0123abcd.pth")
    assert msg == f"cannot download {url} (HTTP 404 Not Found); download it by hand and put it at {target}"
    assert _leftovers(tmp_path) == []


def test_offline_one_line(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/w/model-0123abcd.pth"
    with pytest.raises(UserError) as e:
        download.fetch(url, cache_dir=tmp_path, progress=False)
    msg = _one_line(e)
    target = str(tmp_path / "model-0123abcd.pth")
    assert msg.startswith(f"cannot download {url} (") and msg.endswith(f"download it by hand and put it at {target}")
    assert "refused" in msg.lower()
    assert _leftovers(tmp_path) == []


def test_timeout_one_line(tmp_path):
    # a server that accepts the connection but never answers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/model-0123abcd.pth"
        with pytest.raises(UserError) as e:
            download.fetch(url, cache_dir=tmp_path, progress=False, timeout=0.3)
    msg = _one_line(e)
    assert msg.startswith(f"cannot download {url} (timed out)") and str(tmp_path / "model-0123abcd.pth") in msg
    assert _leftovers(tmp_path) == []


def test_hand_placed_file(server, blob, tmp_path):
    target = tmp_path / server.name
    target.write_bytes(blob)
    assert download.fetch(server.url, sha256=server.sha256, cache_dir=tmp_path, progress=False) == str(target)
    assert server.log == []  # accepted without a request
    target.write_bytes(blob[:-1] + b"x")
    with pytest.raises(UserError) as e:
        download.fetch(server.url, sha256=server.sha256, cache_dir=tmp_path, progress=False)
    msg = _one_line(e)
    assert str(target) in msg and server.url in msg and server.sha256 in msg
    assert server.log == []
    assert target.read_bytes() == blob[:-1] + b"x"  # refused, not overwritten
    assert _leftovers(tmp_path) == [server.name]


def test_symlinked_target_refused(server, blob, tmp_path):
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    link = cache / server.name
    link.symlink_to(elsewhere)
    with pytest.raises(UserError, match="symbolic link") as e:
        download.fetch(server.url, sha256=server.sha256, cache_dir=cache, progress=False)
    assert str(link) in _one_line(e)
    assert elsewhere.read_bytes() == b"precious" and link.is_symlink()
    assert server.log == [] and _leftovers(cache) == [server.name]
    # even when the link points at a good copy
    elsewhere.write_bytes(blob)
    with pytest.raises(UserError, match="symbolic link"):
        download.fetch(server.url, sha256=server.sha256, cache_dir=cache, progress=False)
    # a dangling link too
    elsewhere.unlink()
    with pytest.raises(UserError, match="symbolic link"):
        download.fetch(server.url, sha256=server.sha256, cache_dir=cache, progress=False)
    assert not elsewhere.exists()


def test_gives_up_after_repeated_cuts(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_RESUMES", 2)

    class AlwaysCut(_Handler):
        def do_GET(self):
            self.server.log.append((self.path, self.headers.get("Range"), 200))
            self.send_response(200)
            self.send_header("Content-Length", str(SIZE))
            self.end_headers()
            self.wfile.write(b"\0" * 10)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    server.RequestHandlerClass = AlwaysCut
    with pytest.raises(UserError) as e:
        download.fetch(server.url, sha256=server.sha256, cache_dir=tmp_path, progress=False)
    msg = _one_line(e)
    assert msg.startswith(f"cannot download {server.url} (") and "gave up after 2 retries" in msg
    assert len(server.log) == 3 and _leftovers(tmp_path) == []


def test_unverified_only_when_asked_and_filename(server, blob, tmp_path):
    path = download.fetch(server.url, filename="renamed.pth", allow_unverified=True, cache_dir=tmp_path, progress=False)
    assert path == str(tmp_path / "renamed.pth") and open(path, "rb").read() == blob
    assert download.fetch(server.url, filename="renamed.pth", allow_unverified=True, cache_dir=tmp_path) == path
    assert len(server.log) == 1
    with pytest.raises(ValueError, match="file name"):
        download.fetch(server.url, filename="../escape.pth", sha256=server.sha256, cache_dir=tmp_path)


def test_resume_through_redirect(server, blob, tmp_path):
    server.cut_after = CUT_AT
    url = server.url.replace("/files/", "/redirect/")
    path = download.fetch(url, cache_dir=tmp_path, progress=False)
    assert open(path, "rb").read() == blob
    assert [(p.split("/")[1], r, s) for p, r, s in server.log] == [
        ("redirect", None, 302),
        ("files", None, 200),
        ("redirect", f"bytes={CUT_AT}-", 302),
        ("files", f"bytes={CUT_AT}-", 206),
    ]
