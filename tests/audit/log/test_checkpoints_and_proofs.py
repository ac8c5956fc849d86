"""Signed checkpoints and proofs served from the database verify as RFC 9162 says."""

from __future__ import annotations

import math

import pytest

from audit.log import merkle, signing
from audit.log.exports import public_key_pem
from audit.log.models import Checkpoint, LogEntry
from audit.log.selectors import consistency_proof, inclusion_document, inclusion_proof
from audit.log.services import checkpoint_create, checkpoint_signed
from audit.log.verifier import verify_inclusion_document
from tests.audit.log.helpers import build_log

pytestmark = pytest.mark.django_db


def key():
    return signing.load_public_key(public_key_pem())


class CheckpointTests:
    def test_checkpoint_signs_size_and_root(self) -> None:
        build_log(10, checkpoint_every=100)
        cp = Checkpoint.objects.get()
        leaves = [bytes.fromhex(h) for h in LogEntry.objects.values_list("leaf_hash", flat=True)]
        assert cp.tree_size == 10 and cp.root_hash == merkle.root_from_leaves(leaves).hex()
        assert signing.verify(key(), checkpoint_signed(cp))

    def test_no_new_checkpoint_without_new_entries(self) -> None:
        build_log(3, checkpoint_every=100)
        assert checkpoint_create() is None
        assert checkpoint_create(force=True) is not None

    def test_forged_or_foreign_signatures_fail(self) -> None:
        build_log(4, checkpoint_every=100)
        signed = checkpoint_signed(Checkpoint.objects.get())
        forged = signing.SignedCheckpoint(signed.tree_size + 1, signed.root_hash, signed.time, signed.key_id, signed.signature)
        assert not signing.verify(key(), forged)
        other = signing.load_private_key(signing.generate_private_pem())
        resigned = signing.sign(other, signed.tree_size, "00" * 32, signed.time)
        assert not signing.verify(key(), resigned)


class ProofTests:
    @pytest.mark.parametrize("n", [1, 2, 5, 8, 13, 33])
    def test_every_entry_proves_against_the_latest_checkpoint(self, n) -> None:
        build_log(n, checkpoint_every=5)
        for entry in LogEntry.objects.all():
            document = inclusion_document(entry=entry)
            assert verify_inclusion_document(document, key()) is None
            assert len(document["path"]) <= math.ceil(math.log2(n)) if n > 1 else document["path"] == []

    def test_proofs_against_older_sizes_and_consistency(self) -> None:
        build_log(21, checkpoint_every=4)
        leaves = [bytes.fromhex(h) for h in LogEntry.objects.values_list("leaf_hash", flat=True)]
        for size in range(1, 22):
            root = merkle.root_from_leaves(leaves[:size])
            for index in range(size):
                path = [bytes.fromhex(h) for h in inclusion_proof(index=index, tree_size=size)]
                assert merkle.verify_inclusion(index, size, leaves[index], path, root)
            for first in range(1, size + 1):
                proof = [bytes.fromhex(h) for h in consistency_proof(first=first, second=size)]
                assert merkle.verify_consistency(first, size, merkle.root_from_leaves(leaves[:first]), root, proof)

    def test_tampered_receipt_proofs_fail(self) -> None:
        build_log(12, checkpoint_every=100)
        document = inclusion_document(entry=LogEntry.objects.get(index=5))
        flipped = dict(document, path=[("0" if document["path"][0][0] != "0" else "1") + document["path"][0][1:], *document["path"][1:]])
        added = dict(document, path=[*document["path"], document["path"][0]])
        removed = dict(document, path=document["path"][:-1])
        wrong_index = dict(document, index=6)
        wrong_size = dict(document, tree_size=document["tree_size"] + 1)
        other_leaf = dict(document, leaf_hash=LogEntry.objects.get(index=4).leaf_hash)
        resized_checkpoint = dict(document, checkpoint=dict(document["checkpoint"], tree_size=13))
        for bad in [flipped, added, removed, wrong_index, wrong_size, other_leaf, resized_checkpoint]:
            assert verify_inclusion_document(bad, key()) is not None
