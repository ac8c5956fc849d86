from __future__ import annotations


class AuditError(Exception):
    """Base of the log's own errors (the log imports nothing of the portal's error classes)."""

    status_code = 400
    code = "audit_error"


class InvalidAction(AuditError):
    code = "invalid_action"


class ProofUnavailable(AuditError):
    status_code = 404
    code = "proof_unavailable"


class SigningKeyError(AuditError):
    status_code = 500
    code = "signing_key_error"
