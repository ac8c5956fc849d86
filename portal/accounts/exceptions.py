from portal.platform.exceptions import Conflict, Forbidden, PortalError


class RoleTooHigh(Forbidden):
    code = "role_too_high"


class TokensCannotManageTokens(Forbidden):
    code = "token_cannot_manage_tokens"
    message = "API tokens cannot create or revoke tokens; sign in to the portal or use the CLI."


class LastAdmin(Conflict):
    code = "last_admin"
    message = "An organisation must keep at least one admin."


class InvalidExpiry(PortalError):
    code = "invalid_expiry"


class RateTooHigh(PortalError):
    code = "rate_too_high"


class UnknownUser(PortalError):
    status_code = 404
    code = "unknown_user"


class AlreadyMember(Conflict):
    code = "already_member"
