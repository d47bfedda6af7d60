"""The C2SP tlog-tiles layout, read: tile paths, hash tiles, entry bundles.

Tile L/N holds the hashes at tree level 8·L, indices 256·N … 256·N+255 (`.p/W`: the first W).
So the hash of any complete aligned subtree of a tree of size n is in one tile, or folds from
a run of one tile's hashes; `TileReader.subtree` answers `merkle.Subtree` that way.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator

from comuna_verify.http import Client
from comuna_verify.merkle import HASH_SIZE, node_hash

HEIGHT = 8
WIDTH = 1 << HEIGHT


class TileError(Exception):
    """A tile or bundle the log should serve and does not, or serves malformed: a mismatch."""


class EntriesNotPublic(Exception):
    """Entry bundles answer 409: voting has not closed everywhere."""


def encode_index(n: int) -> str:
    """1234067 -> x001/x234/067."""
    digits = f"{n:d}"
    digits = digits.zfill((len(digits) + 2) // 3 * 3)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def tile_path(level: int | str, n: int, width: int = WIDTH) -> str:
    suffix = "" if width == WIDTH else f".p/{width}"
    return f"tile/{level}/{encode_index(n)}{suffix}"


def tile_width(tile_level: int, n: int, size: int) -> int:
    """How many hashes tile `tile_level`/`n` holds in a tree of `size` (0: none yet)."""
    count = size >> (HEIGHT * tile_level)
    return max(0, min(WIDTH, count - n * WIDTH))


def fold_tile(hashes: list[bytes]) -> bytes:
    """The Merkle hash of a power-of-two run of hashes."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def split_hashes(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def decode_bundle(data: bytes) -> Iterator[bytes]:
    """The entries of a bundle (uint16 big-endian length, bytes); TileError if truncated."""
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileError("entry bundle ends inside a length prefix")
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + length > len(data):
            raise TileError("entry bundle ends inside an entry")
        yield data[offset : offset + length]
        offset += length


class TileReader:
    """Hash tiles of one log, fetched on demand and kept in a small cache."""

    def __init__(self, client: Client, cache: int = 64) -> None:
        self._client = client
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._limit = cache

    def hash_tile(self, tile_level: int, n: int, width: int) -> bytes:
        path = tile_path(tile_level, n, width)
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        response = self._client.get(f"record/{path}")
        if response.status != 200:
            raise TileError(f"tile {path[5:]}: not served ({response.status})")
        if len(response.body) != width * HASH_SIZE:
            raise TileError(f"tile {path[5:]}: {len(response.body)} bytes, expected {width * HASH_SIZE}")
        self._cache[path] = response.body
        if len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return response.body

    def bundle(self, n: int, width: int) -> list[bytes]:
        path = tile_path("entries", n, width)
        response = self._client.get(f"record/{path}")
        if response.status == 409:
            raise EntriesNotPublic(response.problem())
        if response.status != 200:
            raise TileError(f"entries {path[13:]}: not served ({response.status})")
        entries = list(decode_bundle(response.body))
        if len(entries) != width:
            raise TileError(f"entries {path[13:]}: {len(entries)} entries, expected {width}")
        return entries

    def subtree_of(self, size: int) -> SubtreeOfSize:
        return SubtreeOfSize(self, size)


class SubtreeOfSize:
    """`merkle.Subtree` over the tiles of a tree of `size`: MTH(D[start:end]) for an aligned
    power-of-two range, from the one tile whose hashes lie under it."""

    def __init__(self, reader: TileReader, size: int) -> None:
        self._reader = reader
        self._size = size

    def __call__(self, start: int, end: int) -> bytes:
        count = end - start
        level = count.bit_length() - 1
        if count <= 0 or count & (count - 1) or start % count or end > self._size:
            raise ValueError(f"[{start}, {end}) is not a complete subtree of a tree of size {self._size}")
        tile_level = level // HEIGHT
        below = level - tile_level * HEIGHT  # tree levels between the tile's hashes and the subtree
        first = start >> (tile_level * HEIGHT)  # index of its first hash at the tile's tree level
        n = first // WIDTH
        width = tile_width(tile_level, n, self._size)
        data = self._reader.hash_tile(tile_level, n, width)
        offset = first - n * WIDTH
        hashes = split_hashes(data[offset * HASH_SIZE : (offset + (1 << below)) * HASH_SIZE])
        if len(hashes) != 1 << below:
            raise TileError(f"tile {tile_level}/{n}: too short for [{start}, {end})")
        return fold_tile(hashes)
