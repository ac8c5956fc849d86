from django.utils.translation import gettext

from portal.platform.exceptions import Conflict, Forbidden, NotFound, PortalError, ServiceUnavailable


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


class NotGenerative(PortalError):
    code = "model_not_generative"


class NotEmbedding(PortalError):
    code = "model_not_embedding"


class NotModeration(PortalError):
    code = "model_not_moderation"


class InvalidCompletion(PortalError):
    """A request the model cannot answer as asked (a prompt longer than its context, ...); `param`
    names the request's field at fault, as OpenAI's errors do."""

    code = "invalid_request"

    def __init__(self, message: str | None = None, *, param: str | None = None,
                 details: dict[str, object] | None = None) -> None:
        super().__init__(message, details={**(details or {}), **({"param": param} if param else {})})
        self.param = param


class GenerationTimeout(PortalError):
    status_code = 504
    code = "generation_timeout"


class GenerationWorkerLost(PortalError):
    status_code = 503
    code = "worker_lost"


def classifier_required(version: object, what: str) -> None:
    """Refuses work that only a classifier can do (predictions, explanations, bias reports, evaluations,
    batch jobs) on a generative or an embedding model, with a 400 that says where to go instead."""
    task = getattr(version, "task", "")
    name = getattr(getattr(version, "model", None), "name", "this model")
    if task == "text-generation":
        raise InvalidInput(gettext("%(what)s are for classifiers; '%(name)s' generates text: call it at /v1/chat/completions or /v1/completions.") % {"what": what, "name": name})
    if task == "text-embedding":
        raise InvalidInput(gettext("%(what)s are for classifiers; '%(name)s' turns text into vectors: call it at /v1/embeddings.") % {"what": what, "name": name})


class InvalidGuardrailPolicy(PortalError):
    code = "invalid_guardrail_policy"


class GuardUnavailable(ServiceUnavailable):
    """A policy moderates with a model that is not in service: nothing is generated unchecked."""

    code = "guardrail_unavailable"


class ContentFiltered(PortalError):
    """The organisation's guardrail policy refused the prompt (OpenAI's and Azure's code for it)."""

    code = "content_filter"


class NotCompressible(Conflict):
    code = "not_compressible"


class InvalidCompressionPolicy(PortalError):
    code = "invalid_policy"


class NotAuditable(Conflict):
    code = "not_auditable"
