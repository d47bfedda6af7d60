"""The verifier's own RFC 6962 code against the platform's (an independent implementation):
tree heads, proofs computed from tiles, proof checking, and tampering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_platform.tlog import merkle as platform_merkle
from comuna_platform.tlog import tiles as platform_tiles
from comuna_verify import merkle
from comuna_verify.http import Client, Response
from comuna_verify.tiles import TileError, TileReader, decode_bundle, encode_index, tile_path


class TileClient(Client):
    """Serves the tiles of a log built by the platform, from memory."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__("http://tiles.invalid/c")
        self.files = files
        self.fetched: list[str] = []

    def get(self, path: str) -> Response:
        self.fetched.append(path)
        data = self.files.get(path.removeprefix("record/"))
        return Response(path, 200 if data is not None else 404, data or b"", "application/octet-stream")


def platform_log(size: int) -> tuple[list[bytes], dict[str, bytes]]:
    """Entries and every tile of a tree of `size`, the platform's way."""
    entries = [f"entry {i}\n".encode() for i in range(size)]
    files: dict[str, bytes] = {}
    level_hashes = [platform_merkle.leaf_hash(e) for e in entries]
    level = 0
    while level_hashes:
        width = platform_tiles.TILE_WIDTH
        for n in range(0, len(level_hashes), width):
            chunk = level_hashes[n : n + width]
            files[platform_tiles.Tile(level, n // width, len(chunk)).path] = b"".join(chunk)
        level_hashes = [
            platform_tiles.tile_root(b"".join(level_hashes[i * width : (i + 1) * width]))
            for i in range(len(level_hashes) // width)
        ]
        level += 1
    return entries, files


def platform_hashes(files: dict[str, bytes], size: int, plan: list[list[platform_merkle.Position]]) -> list[bytes]:
    found = {}
    for position in [p for r in plan for p in r]:
        tile = platform_tiles.tile_holding(position, size)
        found[position] = platform_tiles.hash_from_tile(tile, files[tile.path], position)
    return platform_merkle.hashes_of_ranges(plan, found)


def platform_root(files: dict[str, bytes], size: int) -> bytes:
    positions = platform_merkle.root_positions(size)
    return platform_merkle.fold(platform_hashes(files, size, [[p] for p in positions]))


sizes = st.integers(min_value=1, max_value=1300)


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_inclusion_from_tiles_matches_the_platform_and_verifies(size: int, data: st.DataObject) -> None:
    entries, files = platform_log(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root = platform_root(files, size)
    proof = merkle.inclusion_proof(index, size, TileReader(TileClient(files)).subtree_of(size))
    expected = platform_hashes(
        files, size, platform_merkle.ranges_positions(platform_merkle.inclusion_ranges(index, size))
    )
    assert proof == expected
    merkle.verify_inclusion(merkle.leaf_hash(entries[index]), index, size, proof, root)
    platform_merkle.verify_inclusion(platform_merkle.leaf_hash(entries[index]), index, size, proof, root)


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_consistency_from_tiles_matches_the_platform_and_verifies(size: int, data: st.DataObject) -> None:
    _, files = platform_log(size)
    old = data.draw(st.integers(min_value=0, max_value=size))
    _, old_files = platform_log(old) if old else ([], {})
    old_root = platform_root(old_files, old) if old else merkle.EMPTY_ROOT
    root = platform_root(files, size)
    proof = merkle.consistency_proof(old, size, TileReader(TileClient(files)).subtree_of(size))
    plan = platform_merkle.ranges_positions(platform_merkle.consistency_ranges(old, size))
    assert proof == platform_hashes(files, size, plan)
    merkle.verify_consistency(old, old_root, size, root, proof)
    platform_merkle.verify_consistency(old, old_root, size, root, proof)


@settings(max_examples=80, deadline=None)
@given(size=st.integers(min_value=2, max_value=600), data=st.data())
def test_any_flipped_byte_fails(size: int, data: st.DataObject) -> None:
    entries, files = platform_log(size)
    root = platform_root(files, size)
    subtree = TileReader(TileClient(files)).subtree_of(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = merkle.inclusion_proof(index, size, subtree)
    which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=31))
    bad = list(proof)
    bad[which] = bad[which][:byte] + bytes([bad[which][byte] ^ 0x01]) + bad[which][byte + 1 :]
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(entries[index]), index, size, bad, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(entries[index] + b"x"), index, size, proof, root)
    old = data.draw(st.integers(min_value=1, max_value=size - 1))
    consistency = merkle.consistency_proof(old, size, subtree)
    _, old_files = platform_log(old)
    old_root = platform_root(old_files, old)
    flipped = list(consistency)
    flipped[0] = bytes([flipped[0][0] ^ 0x80]) + flipped[0][1:]
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(old, old_root, size, root, flipped)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(old, bytes(32), size, root, consistency)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=0, max_value=2000))
def test_streaming_root_is_the_platform_root(size: int) -> None:
    entries, files = platform_log(size)
    builder = merkle.TreeBuilder()
    for entry in entries:
        builder.add(merkle.leaf_hash(entry))
    assert builder.root() == (platform_root(files, size) if size else platform_merkle.empty_root())


def test_proofs_of_the_wrong_length_fail() -> None:
    entries, files = platform_log(20)
    root = platform_root(files, 20)
    proof = merkle.inclusion_proof(5, 20, TileReader(TileClient(files)).subtree_of(20))
    leaf = merkle.leaf_hash(entries[5])
    for bad in (proof[:-1], [*proof, proof[0]]):
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, 5, 20, bad, root)
    with pytest.raises(merkle.ProofError, match="two roots"):
        merkle.verify_consistency(20, root, 20, bytes(32), [])


def test_tile_paths_follow_c2sp() -> None:
    assert encode_index(0) == "000"
    assert encode_index(1234067) == "x001/x234/067"
    assert tile_path(0, 1234067, 17) == "tile/0/x001/x234/067.p/17"
    assert tile_path("entries", 5) == "tile/entries/005"
    for n in (0, 7, 999, 1000, 123456789):
        assert tile_path(1, n, 3) == platform_tiles.Tile(1, n, 3).path


def test_bundles_decode_and_truncation_fails() -> None:
    entries = [b"a", b"", b"x" * 300]
    data = platform_tiles.encode_bundle(entries)
    assert list(decode_bundle(data)) == entries
    with pytest.raises(TileError):
        list(decode_bundle(data[:-1]))


def test_a_tile_of_the_wrong_length_is_a_tile_error() -> None:
    _, files = platform_log(10)
    files["tile/0/000.p/10"] = files["tile/0/000.p/10"][:-1]
    with pytest.raises(TileError, match=r"tile 0/000\.p/10"):
        TileReader(TileClient(files)).hash_tile(0, 0, 10)


def test_upper_level_tiles_are_read_for_big_subtrees() -> None:
    """A subtree of 2^16 leaves comes from one hash of a level-2 tile."""
    size = 65536 + 300
    _, files = platform_log(size)
    client = TileClient(files)
    root = platform_root(files, size)
    proof = merkle.inclusion_proof(size - 1, size, TileReader(client).subtree_of(size))
    assert "record/tile/2/000.p/1" in client.fetched
    merkle.verify_inclusion(platform_merkle.leaf_hash(f"entry {size - 1}\n".encode()), size - 1, size, proof, root)
