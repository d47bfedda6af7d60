"""RFC 6962 Merkle trees: hashes, tree heads and proofs, planned over stored hashes.

A log stores, for every level `k`, the hash of each complete aligned subtree: position
`(k, i)` is MTH(D[i·2^k : (i+1)·2^k]). Every tree head and proof is a function of a few of those
positions; `*_positions` says which, the matching function computes the result from their
hashes (in the same order). Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
Position = tuple[int, int]  # (level, index): the complete subtree of 2**level leaves at index


class ProofError(ValueError):
    """A proof that does not prove what it claims (or is malformed)."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    return hashlib.sha256(b"").digest()


def range_positions(start: int, end: int) -> list[Position]:
    """The maximal complete subtrees covering D[start:end], left to right (sizes decreasing for
    the ranges a tree head or a proof uses, so their right fold is RFC 6962's MTH)."""
    if not 0 <= start <= end:
        raise ValueError(f"bad range [{start}, {end})")
    positions: list[Position] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        positions.append((level, start >> level))
        start += 1 << level
    return positions


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of consecutive subtrees of decreasing size, from their hashes."""
    if not hashes:
        return empty_root()
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def root_positions(size: int) -> list[Position]:
    return range_positions(0, size)


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 6962 PATH(index, D[0:size]) as the leaf ranges whose MTHs it lists, leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    offset, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            ranges.append((offset + k, offset + n))
            n = k
        else:
            ranges.append((offset, offset + k))
            offset, n, m = offset + k, n - k, m - k
    return list(reversed(ranges))


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """RFC 6962 PROOF(old_size, D[0:new_size]) as leaf ranges, in proof order."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    offset, n, m, whole = 0, new_size, old_size, True
    while m != n:
        k = _split(n)
        if m <= k:
            ranges.append((offset + k, offset + n))
            n = k
        else:
            ranges.append((offset, offset + k))
            offset, n, m, whole = offset + k, n - k, m - k, False
    if not whole:
        ranges.append((offset, offset + m))
    return list(reversed(ranges))


def ranges_positions(ranges: Sequence[tuple[int, int]]) -> list[list[Position]]:
    return [range_positions(start, end) for start, end in ranges]


def hashes_of_ranges(positions: Sequence[Sequence[Position]], hashes: dict[Position, bytes]) -> list[bytes]:
    """One MTH per range, from the stored hashes of its positions."""
    return [fold([hashes[p] for p in range_]) for range_ in positions]


def verify_inclusion(entry_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise `ProofError` unless `proof` shows leaf `index` with `entry_hash` in the tree `root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, entry_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the tree's root")


def verify_consistency(old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise `ProofError` unless `proof` shows the tree `new_root` extends the tree `old_root`."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {new_size} is smaller than {old_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("two different roots for one tree size: the log forked")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a complete subtree: its root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the older root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the newer root")
