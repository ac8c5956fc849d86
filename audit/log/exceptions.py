from __future__ import annotations

from portal.platform.exceptions import PortalError


class AuditError(PortalError):
    """Base of the log's own errors: each has its status and stable code, as every PortalError."""

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


class InvalidRedactionRule(AuditError):
    code = "invalid_redaction_rule"
