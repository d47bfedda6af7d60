"""RFC 6962 trees and proofs: planned over stored hashes, checked against the RFC's recursive
definitions, and refused when any part of a proof or claim is changed."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_platform.tlog import merkle
from comuna_platform.tlog.merkle import ProofError


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1, literally."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return merkle.leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def stored(leaves: list[bytes]) -> dict[merkle.Position, bytes]:
    """Every complete aligned subtree's hash, as a log stores them."""
    hashes = {(0, i): merkle.leaf_hash(e) for i, e in enumerate(leaves)}
    level = 0
    while (count := len(leaves) >> (level + 1)) > 0:
        for i in range(count):
            hashes[(level + 1, i)] = merkle.node_hash(hashes[(level, 2 * i)], hashes[(level, 2 * i + 1)])
        level += 1
    return hashes


def root(size: int, hashes: dict[merkle.Position, bytes]) -> bytes:
    return merkle.fold([hashes[p] for p in merkle.root_positions(size)])


def inclusion(index: int, size: int, hashes: dict[merkle.Position, bytes]) -> list[bytes]:
    plan = merkle.ranges_positions(merkle.inclusion_ranges(index, size))
    return merkle.hashes_of_ranges(plan, hashes)


def consistency(old: int, new: int, hashes: dict[merkle.Position, bytes]) -> list[bytes]:
    plan = merkle.ranges_positions(merkle.consistency_ranges(old, new))
    return merkle.hashes_of_ranges(plan, hashes)


def test_every_small_tree_matches_the_rfc_and_every_proof_verifies() -> None:
    leaves = entries(40)
    hashes = stored(leaves)
    for size in range(0, 41):
        assert root(size, hashes) == mth(leaves[:size])
        for index in range(size):
            proof = inclusion(index, size, hashes)
            assert proof == path(index, leaves[:size])
            merkle.verify_inclusion(merkle.leaf_hash(leaves[index]), index, size, proof, mth(leaves[:size]))
        for old in range(1, size + 1):
            proof = consistency(old, size, hashes)
            assert proof == subproof(old, leaves[:size], True)
            merkle.verify_consistency(old, mth(leaves[:old]), size, mth(leaves[:size]), proof)


def test_the_rfc_6962_empty_tree_root() -> None:
    assert merkle.empty_root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_changed_proof_or_claim_is_refused(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, 300))
    index = data.draw(st.integers(0, size - 1))
    leaves = entries(size)
    hashes = stored(leaves)
    head = root(size, hashes)
    proof = inclusion(index, size, hashes)
    leaf = merkle.leaf_hash(leaves[index])
    merkle.verify_inclusion(leaf, index, size, proof, head)
    tampered = list(proof)
    at = data.draw(st.integers(0, len(tampered) - 1))
    tampered[at] = bytes([tampered[at][0] ^ 1]) + tampered[at][1:]
    for bad in (
        lambda: merkle.verify_inclusion(leaf, index, size, tampered, head),
        lambda: merkle.verify_inclusion(merkle.leaf_hash(b"another"), index, size, proof, head),
        lambda: merkle.verify_inclusion(leaf, (index + 1) % size, size, proof, head),
        lambda: merkle.verify_inclusion(leaf, index, size, proof[:-1], head),
        lambda: merkle.verify_inclusion(leaf, index, size, [*proof, head], head),
    ):
        with pytest.raises(ProofError):
            bad()

    old = data.draw(st.integers(1, size - 1))
    old_head = root(old, hashes)
    proof = consistency(old, size, hashes)
    merkle.verify_consistency(old, old_head, size, head, proof)
    forked = merkle.leaf_hash(b"forked")
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, forked, size, head, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, old_head, size, forked, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, old_head, size, head, proof[:-1])


def test_two_roots_for_one_size_is_a_fork() -> None:
    with pytest.raises(ProofError, match="forked"):
        merkle.verify_consistency(5, b"a" * 32, 5, b"b" * 32, [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(6, b"a" * 32, 5, b"a" * 32, [])
