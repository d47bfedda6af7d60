"""The C2SP tile layout: paths both ways, which tiles a tree has, hashes out of tiles, bundles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_platform.tlog import merkle, tiles
from comuna_platform.tlog.tiles import Tile
from tests.unit.tlog.test_merkle import entries, root, stored


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (Tile(0, 0), "tile/0/000"),
        (Tile(0, 1234067), "tile/0/x001/x234/067"),
        (Tile(1, 5, 17), "tile/1/005.p/17"),
        (Tile(None, 1000), "tile/entries/x001/000"),
        (Tile(None, 3, 255), "tile/entries/003.p/255"),
    ],
)
def test_tile_paths_as_the_spec_spells_them(tile: Tile, path: str) -> None:
    assert tile.path == path
    assert tiles.parse_tile_path(path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/67",
        "tile/0/x000/067",
        "tile/00/000",
        "tile/64/000",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/012",
        "tile/0/x001",
        "tile/e/000",
        "tile/0/000/",
        "../tile/0/000",
    ],
)
def test_paths_the_spec_does_not_allow_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        tiles.parse_tile_path(path)


def test_the_tiles_of_a_tree_of_70000_as_in_the_spec() -> None:
    all_tiles = tiles.tiles_for_size(70_000)
    level0 = [t for t in all_tiles if t.level == 0]
    assert len([t for t in level0 if t.width == 256]) == 273
    assert level0[-1] == Tile(0, 273, 112)
    assert [t for t in all_tiles if t.level == 1] == [Tile(1, 0), Tile(1, 1, 17)]
    assert [t for t in all_tiles if t.level == 2] == [Tile(2, 0, 1)]


def _tile_bytes(tile: Tile, hashes: dict[merkle.Position, bytes]) -> bytes:
    assert tile.level is not None
    return tiles.tile_data([hashes[(tile.level * tiles.TILE_HEIGHT, i)] for i in tile.positions])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70_000 // 64))
def test_every_hash_a_tree_head_needs_comes_out_of_its_tiles(size: int) -> None:
    leaves = entries(size)
    hashes = stored(leaves)
    from_tiles = []
    for position in merkle.root_positions(size):
        tile = tiles.tile_holding(position, size)
        from_tiles.append(tiles.hash_from_tile(tile, _tile_bytes(tile, hashes), position))
    assert merkle.fold(from_tiles) == root(size, hashes)


def test_a_position_the_tree_does_not_complete_has_no_tile() -> None:
    with pytest.raises(ValueError):
        tiles.tile_holding((3, 1), 15)  # leaves 8..15: the 16th is not in the tree yet


def test_hash_from_a_tile_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError):
        tiles.hash_from_tile(Tile(0, 0, 4), b"\x00" * 32 * 3, (0, 1))


@given(st.lists(st.binary(max_size=300), max_size=30))
def test_bundles_round_trip(items: list[bytes]) -> None:
    assert tiles.decode_bundle(tiles.encode_bundle(items)) == items


def test_a_truncated_bundle_or_an_oversized_entry_is_refused() -> None:
    data = tiles.encode_bundle([b"abc", b"defg"])
    for cut in (1, 3, len(data) - 1):
        with pytest.raises(ValueError):
            tiles.decode_bundle(data[:cut])
    with pytest.raises(ValueError):
        tiles.encode_bundle([b"x" * 70_000])
