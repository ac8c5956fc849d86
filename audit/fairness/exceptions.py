from portal.platform.exceptions import NotFound, PortalError


class InvalidDataset(PortalError):
    code = "invalid_dataset"


class DatasetTooLarge(PortalError):
    status_code = 413
    code = "dataset_too_large"


class InvalidPolicy(PortalError):
    code = "invalid_policy"


class ReportNotFound(NotFound):
    code = "report_not_found"


class ReportNotFinished(PortalError):
    status_code = 409
    code = "report_not_finished"
