"""RFC 9162 Merkle trees: roots, proofs and their verification, against a direct reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.log import merkle


def reference_mth(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 section 2.1.1 writes it, recursively over the leaf data."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def data(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(n)]


def subtree_fn(leaves: list[bytes]):
    return lambda start, end: reference_mth(leaves[start:end])


sizes = st.integers(min_value=1, max_value=70)


class RootTests:
    @given(sizes)
    def test_root_from_leaves_matches_the_rfc_definition(self, n) -> None:
        leaves = data(n)
        assert merkle.root_from_leaves([merkle.leaf_hash(d) for d in leaves]) == reference_mth(leaves)

    @given(sizes)
    def test_frontier_emits_every_perfect_node(self, n) -> None:
        leaves = data(n)
        frontier: merkle.Frontier = []
        for i, d in enumerate(leaves):
            for level, position, h in merkle.frontier_push(frontier, merkle.leaf_hash(d)):
                size = 1 << level
                assert h == reference_mth(leaves[position * size : (position + 1) * size])
                assert (position + 1) * size == i + 1
        assert merkle.frontier_root(frontier) == reference_mth(leaves)
        assert [s for s, _ in frontier] == [1 << b for b in range(n.bit_length()) if n >> b & 1][::-1]

    def test_known_vector(self) -> None:
        # RFC 6962/9162 test vectors: the empty tree root is SHA-256 of nothing.
        assert merkle.root_from_leaves([]).hex() == (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )


class PerfectPiecesTests:
    @given(st.integers(0, 64), st.integers(1, 64))
    def test_pieces_cover_the_range_aligned(self, start_exp, length) -> None:
        start = (start_exp // 8) * 8
        pieces = merkle.perfect_pieces(start, start + length)
        pos = start
        for level, position in pieces:
            assert position << level == pos
            pos += 1 << level
        assert pos == start + length


class InclusionTests:
    @settings(max_examples=60)
    @given(st.data())
    def test_every_leaf_proves_and_only_its_own_data(self, draw) -> None:
        n = draw.draw(sizes)
        m = draw.draw(st.integers(0, n - 1))
        leaves = data(n)
        root = reference_mth(leaves)
        path = merkle.inclusion_path(m, n, subtree_fn(leaves))
        assert len(path) <= (n - 1).bit_length()
        assert merkle.verify_inclusion(m, n, merkle.leaf_hash(leaves[m]), path, root)
        assert not merkle.verify_inclusion(m, n, merkle.leaf_hash(b"forged"), path, root)

    @settings(max_examples=60)
    @given(st.data())
    def test_any_tampered_proof_fails(self, draw) -> None:
        n = draw.draw(st.integers(2, 70))
        m = draw.draw(st.integers(0, n - 1))
        leaves = data(n)
        root, leaf = reference_mth(leaves), merkle.leaf_hash(leaves[m])
        path = merkle.inclusion_path(m, n, subtree_fn(leaves))
        flipped = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
        assert not merkle.verify_inclusion(m, n, leaf, flipped, root)
        assert not merkle.verify_inclusion(m, n, leaf, [*path, path[0]], root)
        assert not merkle.verify_inclusion(m, n, leaf, path[:-1], root)
        if m + 1 < n:
            assert not merkle.verify_inclusion(m + 1, n, leaf, path, root)
        # (A wrong tree size can still fold to the same root for some shapes: the size is bound
        # by the signed checkpoint, whose tests live with the checkpoints.)
        assert not merkle.verify_inclusion(n, n, leaf, path, root)


class ConsistencyTests:
    @settings(max_examples=80)
    @given(st.data())
    def test_old_tree_is_a_prefix_of_the_new(self, draw) -> None:
        n = draw.draw(sizes)
        m = draw.draw(st.integers(1, n))
        leaves = data(n)
        proof = merkle.consistency_proof(m, n, subtree_fn(leaves))
        old, new = reference_mth(leaves[:m]), reference_mth(leaves)
        assert merkle.verify_consistency(m, n, old, new, proof)

    @settings(max_examples=80)
    @given(st.data())
    def test_rewritten_history_or_tampered_proof_fails(self, draw) -> None:
        n = draw.draw(st.integers(2, 70))
        m = draw.draw(st.integers(1, n - 1))
        leaves = data(n)
        proof = merkle.consistency_proof(m, n, subtree_fn(leaves))
        new = reference_mth(leaves)
        rewritten = reference_mth([b"other", *leaves[1:m]])
        assert not merkle.verify_consistency(m, n, rewritten, new, proof)
        real_old = reference_mth(leaves[:m])
        if proof:
            tampered = [*proof[:-1], bytes([proof[-1][0] ^ 1]) + proof[-1][1:]]
            assert not merkle.verify_consistency(m, n, real_old, new, tampered)
            assert not merkle.verify_consistency(m, n, real_old, new, proof[:-1])
            assert not merkle.verify_consistency(m, n, real_old, new, [*proof, proof[0]])

    def test_no_proof_from_an_empty_tree(self) -> None:
        with pytest.raises(ValueError):
            merkle.consistency_proof(0, 4, subtree_fn(data(4)))
