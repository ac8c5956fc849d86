from portal.platform.exceptions import NotFound, PortalError


class InvalidExport(PortalError):
    code = "invalid_export"


class ExportNotFound(NotFound):
    code = "export_not_found"


class ExportNotFinished(PortalError):
    status_code = 409
    code = "export_not_finished"
