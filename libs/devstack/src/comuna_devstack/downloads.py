"""Artifacts the dev stack fetches from Maven Central (or a mirror) once per machine: pinned by
SHA-512, streamed with progress, and kept in the cache under a lock so parallel runs share one
download."""

from __future__ import annotations

import fcntl
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from comuna_devstack.errors import DevStackError
from comuna_devstack.locations import shared_dir

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
MAVEN_URL_ENV = "COMUNA_DEV_MAVEN_URL"

Notify = Callable[[str], None]


def maven_url(group: str, artifact: str, version: str, filename: str) -> str:
    """Where Maven Central (or the mirror in COMUNA_DEV_MAVEN_URL) serves `filename`."""
    base = os.environ.get(MAVEN_URL_ENV, "").strip().rstrip("/") or MAVEN_CENTRAL
    return f"{base}/{group.replace('.', '/')}/{artifact}/{version}/{filename}"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if needed), held for the block."""
    shared_dir(path.parent)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download_pinned(url: str, target: Path, *, sha512: str, what: str, notify: Notify) -> None:
    """Stream `url` into `target`, checking its SHA-512 against the pinned one (a tampered
    mirror cannot serve another file with a matching checksum next to it); nothing is kept
    when it differs."""
    digest = hashlib.sha512()
    if not url.startswith(("https://", "http://")):
        raise DevStackError(f"{MAVEN_URL_ENV} must be an http(s) URL, not {url!r}")
    notify(f"downloading {what} from {url}")
    try:
        # The scheme is checked above; the content is checked against the pinned digest below.
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0)
            done, reported = 0, 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if total and done * 4 // total > reported:
                    reported = done * 4 // total
                    notify(f"  {done >> 20} of {total >> 20} MiB")
    except (urllib.error.URLError, OSError) as exc:
        target.unlink(missing_ok=True)
        raise DevStackError(
            f"cannot download {what} from {url}: {exc}; check the network or set {MAVEN_URL_ENV} to a Maven mirror"
        ) from exc
    if digest.hexdigest() != sha512:
        target.unlink(missing_ok=True)
        raise DevStackError(f"the {what} download from {url} does not have the pinned SHA-512; refusing to use it")
