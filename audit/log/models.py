from __future__ import annotations

from django.db import models


class LogHead(models.Model):
    """The one row that sequences the log: its lock orders every append.

    `frontier` is the compact range of the tree ([[size, hex hash], ...]), enough to compute the
    root and the next nodes in O(log n) without reading the log. `rules_version` moves with every
    redaction rule created: an append is written only under the version it was redacted for.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    size = models.BigIntegerField(default=0)
    frontier = models.JSONField(default=list)
    rules_version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class LogEntry(models.Model):
    """One append-only entry. Only `payload`, `salt` and `erased_at` may ever change, by erasure."""

    index = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    # Plain ids, no foreign keys: the log imports no other app and outlives what it describes.
    organization_id = models.BigIntegerField(null=True, db_index=True)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(null=True)  # redacted; None once erased
    payload_sha256 = models.CharField(max_length=64)
    commitment = models.CharField(max_length=64)
    salt = models.CharField(max_length=32, blank=True)  # blanked by erasure: unlinks the raw data
    subject_key = models.CharField(max_length=64, blank=True, db_index=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    leaf_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["index"]
        indexes = [
            models.Index(fields=["organization_id", "index"]),
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["organization_id", "actor_label"]),
        ]

    def __str__(self) -> str:
        return f"#{self.index} {self.action}"


class MerkleNode(models.Model):
    """A perfect subtree of the log (level >= 1; leaves are LogEntry.leaf_hash)."""

    level = models.PositiveSmallIntegerField()
    position = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "position"], name="merkle_node_unique")
        ]


class Checkpoint(models.Model):
    """A signed statement of the tree's size and root at a moment (a signed tree head)."""

    tree_size = models.BigIntegerField()
    root_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["tree_size", "id"]


class RedactionRule(models.Model):
    """An organisation's own pattern to redact from payloads, beside the built-in finders."""

    organization_id = models.BigIntegerField(db_index=True)
    label = models.CharField(max_length=32)
    pattern = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)


class VerificationRun(models.Model):
    """The outcome of one full verification of the log against its checkpoints."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True)
    entries = models.BigIntegerField(default=0)
    checkpoints = models.IntegerField(default=0)
    fault_kind = models.CharField(max_length=32, blank=True)
    fault_index = models.BigIntegerField(null=True, blank=True)
    summary = models.TextField(blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
