"""Downloading published weight files into a local cache, verified by their sha256.

`fetch(url, sha256=... | hash_prefix=...)` returns the path of the verified file in the cache
folder: ``~/.cache/vsr_jax/weights``, or ``$VSR_JAX_WEIGHTS_DIR``, or the ``cache_dir``
argument. A file already there (downloaded before, or put there by hand) is used without
network access when its hash matches, and refused in one line when it does not.

The download (urllib, no extra dependency) streams into a temporary file of unpredictable
name in the cache folder, hashing as it goes, with a tqdm bar on stderr. A connection cut
part-way is resumed with an HTTP ``Range`` request when the server answers 206, and started
again from zero when it answers 200. Only a file whose hash matches is moved into place
(``os.replace``: atomic, and readers never see half a file); otherwise the temporary file is
deleted. Authors often put the first hex digits of the sha256 in the file name
(``spynet_sintel_final-3d2a1287.pth``, ``vgg19-dcbb9e9d.pth``): with no hash given, that
prefix is checked (`hash_prefix_from_name`).

A file published only on a page for people (Google Drive: no link a program can follow) is
fetched with ``manual=True``: nothing is downloaded; the file put at the cache path by hand is
verified and used, and until then one line names the page and that path.

Every failure a user can meet (offline, HTTP error, time-out, wrong hash, a bad file or a
symbolic link at the cache path) is a one-line `vsr_jax.errors.UserError` naming the URL
and the exact path where a good copy can be put by hand. The cache path is never followed
through a symbolic link, and no file is written or replaced except our own temporary file
and, once verified, the cache file itself.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from vsr_jax.errors import UserError

ENV_VAR = "VSR_JAX_WEIGHTS_DIR"
DEFAULT_DIR = os.path.join("~", ".cache", "vsr_jax", "weights")
TIMEOUT_S = 30.0  # per socket operation (connect, each read), not for the whole file
MAX_RESUMES = 5  # reconnections after a cut, per fetch
CHUNK = 1 << 16
USER_AGENT = "vsr_jax-weights/1"

_HEX = re.compile(r"[0-9a-f]+")
_NAME_HASH = re.compile(r"-([0-9a-f]{6,64})\.[^.]+$")


class _Cut(Exception):
    """The connection ended before the whole body arrived (resumable)."""


def weights_dir(cache_dir: str | os.PathLike | None = None) -> str:
    """The cache folder: `cache_dir`, else ``$VSR_JAX_WEIGHTS_DIR``, else ``~/.cache/vsr_jax/weights``."""
    d = cache_dir if cache_dir is not None else (os.environ.get(ENV_VAR) or DEFAULT_DIR)
    return os.path.abspath(os.path.expanduser(os.fspath(d)))


def hash_prefix_from_name(filename: str) -> str | None:
    """The sha256 prefix authors put in file names: ``vgg19-dcbb9e9d.pth`` -> ``"dcbb9e9d"``; None if none."""
    m = _NAME_HASH.search(filename)
    return m.group(1) if m else None


def _sha256_stream(f) -> str:
    """The hex sha256 of what an open binary file holds from here on (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file (read in chunks)."""
    with open(path, "rb") as f:
        return _sha256_stream(f)


def _filename_from_url(url: str) -> str:
    return urllib.parse.unquote(os.path.basename(urllib.parse.urlsplit(url).path))


def _check_filename(name: str, url: str) -> str:
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name or name.startswith("."):
        raise ValueError(f"no usable file name for {url!r} ({name!r}); pass filename=")
    return name


def _expected(sha256: str | None, hash_prefix: str | None, filename: str) -> tuple[str | None, bool]:
    """(expected hex, whether it is the full sha256)."""
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if len(sha256) != 64 or not _HEX.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        if hash_prefix is not None and not sha256.startswith(hash_prefix.strip().lower()):
            raise ValueError(f"hash_prefix {hash_prefix!r} is not a prefix of sha256 {sha256!r}")
        return sha256, True
    if hash_prefix is None:
        hash_prefix = hash_prefix_from_name(filename)
        if hash_prefix is None:
            return None, False
    hash_prefix = hash_prefix.strip().lower()
    if not 6 <= len(hash_prefix) <= 64 or not _HEX.fullmatch(hash_prefix):
        raise ValueError(f"hash_prefix must be 6 to 64 hex digits, got {hash_prefix!r}")
    return hash_prefix, False


def _matches(actual: str, expected: str | None, full: bool) -> bool:
    if expected is None:
        return True
    return actual == expected if full else actual.startswith(expected)


def _describe(expected: str, full: bool) -> str:
    return f"sha256 {expected}" if full else f"a sha256 starting with {expected}"


def _reason(exc: BaseException) -> str:
    """A short one-line reason for a network error."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        r = exc.reason
        text = _reason(r) if isinstance(r, BaseException) else str(r)
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    elif isinstance(exc, socket.gaierror):
        text = f"cannot resolve host: {exc.strerror or exc}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _check_target(target: str, url: str) -> None:
    """Refuse a symbolic link or a non-file at the cache path (never followed, never replaced)."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UserError(
            f"{target} is a symbolic link: the weights cache does not follow links; "
            f"replace it with the file itself (downloaded from {url})"
        )
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{target} exists and is not a regular file; remove it or put the file from {url} there")


def _hash_existing(target: str, url: str) -> str | None:
    """sha256 of the file at `target` (opened without following a link), None if there is none."""
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            _check_target(target, url)  # raises the symbolic-link message
        raise UserError(f"cannot read {target} ({_reason(e)})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UserError(f"{target} exists and is not a regular file; remove it or put the file from {url} there")
        return _sha256_stream(f)


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes START-END/TOTAL`` -> (START, TOTAL or None)."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _make_bar(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        file=sys.stderr,
        disable=not enabled,
        leave=True,
    )


def _download(url: str, f, desc: str, progress: bool, timeout: float) -> str:
    """Stream `url` into the open binary file `f` (empty), resuming after cuts; returns the sha256."""
    received = 0
    hasher = hashlib.sha256()
    bar = None
    resumes = 0
    try:
        while True:
            headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
            if received:
                headers["Range"] = f"bytes={received}-"
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    status = getattr(resp, "status", None) or 200
                    length = resp.headers.get("Content-Length")
                    length = int(length) if length and length.strip().isdigit() else None
                    total = None
                    if received and status == 206:
                        cr = _parse_content_range(resp.headers.get("Content-Range"))
                        if cr is None or cr[0] != received:
                            raise urllib.error.URLError(f"bad Content-Range {resp.headers.get('Content-Range')!r}")
                        total = cr[1] if cr[1] is not None else (received + length if length is not None else None)
                    elif status == 200:
                        if received:  # the server ignored Range: start again from zero
                            f.seek(0)
                            f.truncate()
                            hasher = hashlib.sha256()
                            received = 0
                        total = length
                    else:
                        raise urllib.error.URLError(f"unexpected HTTP status {status}")
                    if bar is None:
                        bar = _make_bar(total, received, desc, progress)
                    else:
                        bar.reset(total=total)
                        bar.update(received)
                    start = received
                    try:
                        while True:
                            block = resp.read(CHUNK)
                            if not block:
                                break
                            f.write(block)
                            hasher.update(block)
                            received += len(block)
                            bar.update(len(block))
                    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
                        raise _Cut(_reason(e)) from None
                    if length is not None and received - start < length:
                        raise _Cut(f"connection closed after {received} of {start + length} bytes")
                    if total is not None and received != total:
                        raise _Cut(f"got {received} of {total} bytes")
                    f.flush()
                    os.fsync(f.fileno())
                    return hasher.hexdigest()
            except _Cut as cut:
                resumes += 1
                if resumes > MAX_RESUMES:
                    raise urllib.error.URLError(f"{cut}; gave up after {MAX_RESUMES} retries") from None
                continue
    finally:
        if bar is not None:
            bar.close()


def fetch(
    url: str,
    *,
    sha256: str | None = None,
    hash_prefix: str | None = None,
    filename: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
    allow_unverified: bool = False,
    manual: bool = False,
    label: str = "",
    page_file: str = "",
) -> str:
    """The local path of the file at `url`, verified, in the cache folder (see the module docstring).

    `sha256`: the full hex digest; `hash_prefix`: its first hex digits (taken from the file
    name, ``name-<hex>.ext``, when neither is given). A file with no known hash is refused
    (ValueError) unless `allow_unverified`. `filename`: the name in the cache (default: the
    URL's last path component). `progress`: a tqdm bar on stderr. `timeout`: seconds per
    socket operation. `manual`: `url` is a page for a person (Google Drive), not a file: nothing
    is downloaded, and a file missing from the cache is one line naming the page and the exact
    path to put it at (`page_file`: the file's name on that page when it is not the cache name).
    `label`: what messages call the file (default: its name).
    """
    name = _check_filename(filename if filename is not None else _filename_from_url(url), url)
    expected, full = _expected(sha256, hash_prefix, name)
    if expected is None and not allow_unverified:
        raise ValueError(f"no sha256 or hash_prefix for {url!r} (and none in its file name); pass one")
    folder = weights_dir(cache_dir)
    target = os.path.join(folder, name)

    _check_target(target, url)
    existing = _hash_existing(target, url)
    if existing is not None:
        if _matches(existing, expected, full):
            return target
        raise UserError(
            f"{target} does not match {url}: its sha256 is {existing}, expected {_describe(expected, full)}; "
            f"delete it, or put a good copy there"
        )
    if manual:
        raise UserError(
            f"{label or name} is published only on a web page that programs cannot download from: open {url}, "
            f"download {page_file or name} and put it at {target}"
        )

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create the weights folder {folder} ({_reason(e)}); set {ENV_VAR} to a writable folder"
        ) from None
    if not os.path.isdir(folder):
        raise UserError(f"the weights folder {folder} is not a folder; set {ENV_VAR} to a writable folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise UserError(f"cannot write in the weights folder {folder} ({_reason(e)}); set {ENV_VAR}") from None

    done = False
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                actual = _download(url, f, name, progress, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            if isinstance(e, OSError) and not isinstance(
                e, (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror)
            ):
                # a local problem (disk full, ...) rather than the network
                raise UserError(f"cannot write {tmp} while downloading {url} ({_reason(e)})") from None
            raise UserError(
                f"cannot download {url} ({_reason(e)}); download it by hand and put it at {target}"
            ) from None
        if not _matches(actual, expected, full):
            raise UserError(
                f"{url} has sha256 {actual}, expected {_describe(expected, full)}; the download was deleted; "
                f"download a good copy by hand and put it at {target}"
            )
        _check_target(target, url)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        done = True
        return target
    finally:
        if not done:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
