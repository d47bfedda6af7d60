"""RFC 6962 Merkle trees, written from the RFC: hashes, a streaming tree head, proofs.

Proofs are computed from a function `subtree(start, end)` giving MTH(D[start:end]) for the
aligned power-of-two ranges RFC 6962's recursion asks for (a tile reader answers it), and are
checked with the iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Subtree = Callable[[int, int], bytes]  # (start, end) -> MTH(D[start:end]), end - start a power of two


class ProofError(ValueError):
    """A proof that does not prove what it claims."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """k of RFC 6962: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class TreeBuilder:
    """The root of a growing tree in O(log n) memory: a stack of the complete subtrees so far
    (the binary digits of the size), merged as leaves arrive."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []  # hashes of complete subtrees, largest first

    def add(self, leaf: bytes) -> None:
        self._stack.append(leaf)
        self.size += 1
        merges = self.size
        while merges & 1 == 0:  # each trailing zero bit of the size completes a bigger subtree
            right = self._stack.pop()
            self._stack.append(node_hash(self._stack.pop(), right))
            merges >>= 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root


def tree_hash(start: int, end: int, subtree: Subtree) -> bytes:
    """MTH(D[start:end]) for any range RFC 6962's recursion reaches (start aligned to k)."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0:
        return subtree(start, end)
    k = split_point(n)
    return node_hash(subtree(start, start + k), tree_hash(start + k, end, subtree))


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            proof.append(tree_hash(start + k, end, subtree))
            end = start + k
        else:
            proof.append(tree_hash(start, start + k, subtree))
            start += k
    proof.reverse()
    return proof


def consistency_proof(old_size: int, new_size: int, subtree: Subtree) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 6962 §2.1.2."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, complete = 0, new_size, True
    m = old_size  # the old tree ends at m; [start, end) is the range the recursion is in
    while m != end:
        k = split_point(end - start)
        if m - start <= k:
            proof.append(tree_hash(start + k, end, subtree))
            end = start + k
        else:
            proof.append(tree_hash(start, start + k, subtree))
            start += k
            complete = False
    if not complete:  # SUBPROOF(m, D[m'..], false) ends with the old tree's own subtree
        proof.append(tree_hash(start, m, subtree))
    proof.reverse()
    return proof


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2; ProofError unless `proof` leads from `leaf` at `index` to `root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2; ProofError unless the tree `new_root` extends the tree `old_root`."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {new_size} is smaller than {old_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes is empty")
        if old_root != new_root:
            raise ProofError(f"two roots for size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree is empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # the old tree is a complete subtree: its root starts the path
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
            while fn & 1 == 0 and fn != 0:
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
