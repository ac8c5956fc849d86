from portal.platform.exceptions import Conflict, Forbidden, NotFound, PortalError


class ModelNotFound(NotFound):
    code = "model_not_found"


class ModelNotServable(Conflict):
    code = "model_not_servable"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class ApprovalBlocked(Conflict):
    code = "approval_blocked"


class SelfReview(Forbidden):
    code = "self_review"
    message = "A version must be reviewed by someone other than the person who submitted it."


class InvalidInput(PortalError):
    code = "invalid_input"


class InvalidArchive(PortalError):
    code = "invalid_archive"


class ArchiveTooLarge(PortalError):
    status_code = 413
    code = "archive_too_large"


class IncompleteCard(PortalError):
    code = "incomplete_model_card"


class QuotaExceeded(PortalError):
    status_code = 429
    code = "quota_exceeded"


class WorkerUnavailable(PortalError):
    status_code = 503
    code = "worker_unavailable"


class PredictionTimeout(PortalError):
    status_code = 504
    code = "prediction_timeout"


class ArtifactMismatch(PortalError):
    status_code = 500
    code = "artifact_mismatch"


class JobResultsGone(PortalError):
    status_code = 410
    code = "job_results_gone"


class JobNotFinished(Conflict):
    code = "job_not_finished"


class NotExplainable(Conflict):
    code = "not_explainable"


class InvalidDataset(PortalError):
    code = "invalid_dataset"


class NotTrainable(Conflict):
    code = "not_trainable"


class BudgetExceeded(Conflict):
    code = "privacy_budget_exceeded"


class JobNotCancellable(Conflict):
    code = "job_not_cancellable"
