"""Merkle trees as RFC 9162 (Certificate Transparency 2.0, section 2.1) defines them.

Pure Python, no Django: the standalone verifier uses this module as it is.

    leaf hash  MTH({d}) = SHA-256(0x00 || d)
    node hash  SHA-256(0x01 || left || right)
    split      k = the largest power of two smaller than n
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

Hash = bytes


def leaf_hash(data: bytes) -> Hash:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: Hash, right: Hash) -> Hash:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    if n < 2:
        raise ValueError("a split needs at least two leaves")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaves: Sequence[Hash]) -> Hash:
    """MTH(D[0:n]) from the leaf hashes, in O(n) and without recursion."""
    if not leaves:
        return EMPTY_ROOT
    frontier: list[tuple[int, Hash]] = []
    for leaf in leaves:
        frontier_push(frontier, leaf)
    return frontier_root(frontier)


# A frontier (compact range) is the list of (size, hash) of the maximal perfect subtrees that
# make up a tree of n leaves, left to right; its sizes are the set bits of n, largest first.
Frontier = list[tuple[int, Hash]]


def frontier_push(frontier: Frontier, leaf: Hash) -> list[tuple[int, int, Hash]]:
    """Appends a leaf; returns the (level, position, hash) of every perfect node completed.

    `position` is the node's index among the nodes of its level (leaf index >> level).
    """
    size_before = sum(size for size, _ in frontier)
    frontier.append((1, leaf))
    completed: list[tuple[int, int, Hash]] = []
    level = 0
    while len(frontier) >= 2 and frontier[-1][0] == frontier[-2][0]:
        (size, right), (_, left) = frontier.pop(), frontier.pop()
        level += 1
        merged = node_hash(left, right)
        frontier.append((size * 2, merged))
        completed.append((level, size_before >> level, merged))
    return completed


def frontier_root(frontier: Frontier) -> Hash:
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1][1]
    for _, left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


# --- proofs --------------------------------------------------------------------------------
# Proofs are computed over a `subtree(start, end)` callback returning MTH(D[start:end]); the log
# answers it from stored perfect nodes, tests answer it from a list.
SubtreeHash = Callable[[int, int], Hash]


def inclusion_path(m: int, n: int, subtree: SubtreeHash, offset: int = 0) -> list[Hash]:
    """PATH(m, D[offset:offset+n]) of RFC 9162 section 2.1.3.1."""
    if not 0 <= m < n:
        raise ValueError(f"leaf {m} is not in a tree of size {n}")
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*inclusion_path(m, k, subtree, offset), subtree(offset + k, offset + n)]
    return [*inclusion_path(m - k, n - k, subtree, offset + k), subtree(offset, offset + k)]


def consistency_proof(m: int, n: int, subtree: SubtreeHash) -> list[Hash]:
    """PROOF(m, D[0:n]) of RFC 9162 section 2.1.4.1."""
    if not 0 < m <= n:
        raise ValueError(f"no consistency proof from size {m} to size {n}")
    return _subproof(m, n, True, subtree, 0)


def _subproof(m: int, n: int, complete: bool, subtree: SubtreeHash, offset: int) -> list[Hash]:
    if m == n:
        return [] if complete else [subtree(offset, offset + n)]
    k = split_point(n)
    if m <= k:
        return [*_subproof(m, k, complete, subtree, offset), subtree(offset + k, offset + n)]
    return [*_subproof(m - k, n - k, False, subtree, offset + k), subtree(offset, offset + k)]


def verify_inclusion(index: int, size: int, leaf: Hash, path: Sequence[Hash], root: Hash) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    size1: int, size2: int, root1: Hash, root2: Hash, proof: Sequence[Hash]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if size1 < 1 or size2 < size1:
        return False
    if size1 == size2:
        return len(proof) == 0 and root1 == root2
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


def perfect_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """Splits [start, end) into aligned perfect subtrees as (level, position), left to right.

    Every range the proof algorithms ask for is a subtree of the RFC tree, so `start` is aligned
    to the largest piece; the right edge may be ragged.
    """
    pieces = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while (1 << level) > end - start:
            level -= 1
        pieces.append((level, start >> level))
        start += 1 << level
    return pieces


def combine_pieces(hashes: Sequence[Hash]) -> Hash:
    """MTH of a range from the hashes of its perfect pieces (largest first, as a frontier)."""
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root
