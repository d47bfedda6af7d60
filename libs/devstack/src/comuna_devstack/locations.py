"""Where the dev stack keeps things outside its state directory, never under /tmp.

- The cache (`cache_root()`): PostgreSQL binaries copied where the unprivileged server account
  can reach them (one copy per PostgreSQL version, shared by every checkout and session) and
  `scratch/`, the throw-away clusters of test sessions. `/var/cache/comuna` as root,
  `$XDG_CACHE_HOME/comuna` (default `~/.cache/comuna`) otherwise, `COMUNA_DEV_CACHE_DIR` to
  choose another place.
- Relocated data (`relocated_data_root()`, root only): the `make run` data directory of a
  checkout the server account cannot reach, `/var/lib/comuna/devstack-<hash of the state dir>`;
  kept between runs like `.devstack/` itself and removed by `comuna-dev clean`.

Temporary directories made here carry the creating process's pid and start time in their
name, so one left behind by a killed process is recognised and swept by the next caller,
while those of live processes are left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from comuna_devstack._process import start_time

CACHE_DIR_ENV = "COMUNA_DEV_CACHE_DIR"
ROOT_CACHE_DIR = Path("/var/cache/comuna")
ROOT_DATA_DIR = Path("/var/lib/comuna")


def cache_root() -> Path:
    """The dev stack's cache directory (not created here)."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).absolute()
    if os.geteuid() == 0:
        # Not $XDG_CACHE_HOME: root's home is private, and the server account must reach this.
        return ROOT_CACHE_DIR
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "comuna"


def relocated_data_root() -> Path:
    """Parent of data directories moved out of a state directory the server account cannot reach."""
    return ROOT_DATA_DIR


def shared_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed; the directories we create are world-traversable
    whatever the umask, because the server account runs inside them."""
    missing = [directory for directory in (path, *path.parents) if not directory.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for directory in missing:
        try:
            directory.chmod(0o755)
        except PermissionError:  # created meanwhile by another account: theirs to set
            pass
    return path


def owned_temp_dir(parent: Path, kind: str) -> Path:
    """A new 0755 directory `<kind>.<pid>.<start time>.<random>` in `parent`."""
    me = os.getpid()
    path = Path(tempfile.mkdtemp(prefix=f"{kind}.{me}.{start_time(me)}.", dir=shared_dir(parent)))
    path.chmod(0o755)
    return path


def sweep_abandoned(parent: Path, kind: str) -> list[Path]:
    """Remove the `owned_temp_dir(parent, kind)` directories whose creator has died; returns them."""
    swept = []
    for entry in parent.glob(f"{kind}.*"):
        try:
            _, pid, started, _random = entry.name.rsplit(".", 3)
            owner_alive = start_time(int(pid)) == int(started)
        except ValueError:
            continue
        if not owner_alive:
            shutil.rmtree(entry, ignore_errors=True)
            swept.append(entry)
    return swept
