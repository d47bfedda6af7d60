"""The C2SP tlog-tiles layout: where each stored hash and entry of a log is served.

A tile at level `L`, index `N` holds the hashes at tree level 8·L, indices 256·N … 256·N+255
(fewer in a partial tile, `.p/<W>`); entry bundles hold the entries themselves, uint16-length
prefixed. Any tree hash is either in a tile or computed from one tile's hashes
(`position_in_tiles`), so a reader holding the tiles a checkpoint needs can prove anything.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from comuna_platform.tlog.merkle import HASH_SIZE, Position, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_SIZE = 0xFFFF


@dataclass(frozen=True, slots=True, order=True)
class Tile:
    """Tile `index` at tile level `level` (`level` None: an entry bundle), `width` hashes wide."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def path(self) -> str:
        where = "entries" if self.level is None else str(self.level)
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{where}/{encode_index(self.index)}{suffix}"

    @property
    def positions(self) -> range:
        """Indices, at tree level 8·level (or of entries), this tile holds."""
        return range(self.index * TILE_WIDTH, self.index * TILE_WIDTH + self.width)


def encode_index(index: int) -> str:
    """1234067 -> `x001/x234/067`: 3-digit elements, all but the last prefixed with `x`."""
    if index < 0:
        raise ValueError("a tile index is never negative")
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


_PATH = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


def parse_tile_path(path: str) -> Tile:
    """The tile a path names; ValueError for anything the spec does not allow (leading zeroes,
    a width of 256 or more, a level above 63, an index not in its shortest form)."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise ValueError(f"not a tile path: {path!r}")
    where, encoded, width = match.groups()
    index = int(encoded.replace("x", "").replace("/", ""))
    if encode_index(index) != encoded:
        raise ValueError(f"tile index not in its canonical form: {path!r}")
    level = None if where == "entries" else int(where)
    if level is not None and level > 63:
        raise ValueError(f"tile level above 63: {path!r}")
    tile_width = int(width) if width is not None else TILE_WIDTH
    if width is not None and tile_width >= TILE_WIDTH:
        raise ValueError(f"partial tile width must be below {TILE_WIDTH}: {path!r}")
    return Tile(level, index, tile_width)


def tiles_for_size(size: int) -> list[Tile]:
    """Every hash tile a tree of `size` entries has (full and partial), lowest level first."""
    tiles: list[Tile] = []
    level = 0
    while True:
        count = size >> (TILE_HEIGHT * level)
        if count == 0:
            break
        full, partial = divmod(count, TILE_WIDTH)
        tiles.extend(Tile(level, n) for n in range(full))
        if partial:
            tiles.append(Tile(level, full, partial))
        level += 1
    return tiles


def tile_holding(position: Position, size: int) -> Tile:
    """The smallest tile of a tree of `size` whose hashes give the hash at `position`."""
    level, index = position
    tile_level = level // TILE_HEIGHT
    below = level - tile_level * TILE_HEIGHT  # levels between the tile's hashes and the position
    first = index << below  # first tile hash under the position
    n = first // TILE_WIDTH
    available = (size >> (TILE_HEIGHT * tile_level)) - n * TILE_WIDTH
    if available <= 0 or (first + (1 << below)) > n * TILE_WIDTH + available:
        raise ValueError(f"position {position} is not complete in a tree of size {size}")
    return Tile(tile_level, n, min(available, TILE_WIDTH))


def hash_from_tile(tile: Tile, data: bytes, position: Position) -> bytes:
    """The hash at `position`, from the hashes of `tile` (`data`, concatenated)."""
    if len(data) != tile.width * HASH_SIZE or tile.level is None:
        raise ValueError(f"{tile.path}: expected {tile.width * HASH_SIZE} bytes of hashes, got {len(data)}")
    level, index = position
    below = level - tile.level * TILE_HEIGHT
    if not 0 <= below < TILE_HEIGHT or index < 0:
        raise ValueError(f"position {position} is not under {tile.path}")
    first = (index << below) - tile.index * TILE_WIDTH
    count = 1 << below
    if first < 0 or first + count > tile.width:
        raise ValueError(f"position {position} is not under {tile.path}")
    hashes = [data[(first + i) * HASH_SIZE : (first + i + 1) * HASH_SIZE] for i in range(count)]
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def tile_root(data: bytes) -> bytes:
    """The Merkle hash of a full tile's 256 hashes: the hash one tile level up."""
    if len(data) != TILE_WIDTH * HASH_SIZE:
        raise ValueError("only a full tile has a root")
    hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise ValueError(f"a log entry is at most {MAX_ENTRY_SIZE} bytes, got {len(entry)}")
        parts.append(struct.pack(">H", len(entry)) + entry)
    return b"".join(parts)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ValueError for a truncated one."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("entry bundle ends inside a length prefix")
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + length > len(data):
            raise ValueError("entry bundle ends inside an entry")
        entries.append(data[offset : offset + length])
        offset += length
    return entries


def tile_data(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)
