from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.exceptions import InvalidArchive, InvalidInput, JobNotFinished, JobResultsGone
from inference.ml import private
from inference.ml.explain import MAX_EVALS, MIN_EVALS
from inference.models import GlobalSource, Task
from inference.services import explanations, finetuning, global_explanations, jobs, predictions, registry, uploads
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.parsers import loads_checked
from portal.web.api import StrictSerializer, actor_of
from portal.web.openapi import OBJECT_LIST


class TransitionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    actor = serializers.CharField(source="actor.username")
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()


class VersionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField()
    task = serializers.CharField()
    framework = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField())
    input_schema = serializers.JSONField()
    status = serializers.CharField()
    artifact_sha256 = serializers.CharField()
    artifact_size = serializers.IntegerField()
    card = serializers.JSONField()
    metrics = serializers.JSONField()
    created_at = serializers.DateTimeField()


class VersionDetailSerializer(VersionSerializer):
    transitions = TransitionSerializer(many=True)


class ModelSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    description = serializers.CharField()
    versions = VersionSerializer(many=True)
    aliases = serializers.SerializerMethodField()

    def get_aliases(self, model: Any) -> dict[str, int]:
        return {alias.name: alias.version.version for alias in model.aliases.all()}


class ModelUploadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=JobStatus.choices,
                                     help_text="pending or running: still being checked; done: registered; failed")
    model = serializers.CharField(source="name")
    task = serializers.CharField()
    archive_sha256 = serializers.CharField()
    archive_size = serializers.IntegerField()
    error = serializers.CharField(help_text="why the check refused the archive (status failed)")
    version = VersionSerializer(allow_null=True, help_text="the draft version made (status done)")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()

    def get_url(self, upload: Any) -> str:
        return reverse("api-model-upload", args=[upload.pk])


class ModelListRegisterApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "POST": Cap.MODEL_REGISTER}

    class InputSerializer(StrictSerializer):
        name = serializers.SlugField(max_length=60)
        task = serializers.ChoiceField(choices=Task.values)
        archive = serializers.FileField(
            help_text=".zip or .tar.gz: a Hugging Face model folder with safetensors weights "
                      "(text-classification), or model.onnx + schema.json (tabular-classification)")
        card = serializers.JSONField(required=False, help_text="the model card, as a JSON object")
        description = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(responses=ModelSerializer(many=True), summary="Models of the organisation")
    def get(self, request: Request) -> Response:
        return Response(ModelSerializer(selectors.model_list(actor=actor_of(request)), many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer},
                   responses={201: VersionSerializer, 202: ModelUploadSerializer},
                   summary="Register a model version from an archive",
                   description="The archive is checked on a worker (it loads and runs an example, within time and "
                               "memory limits). 201 with the draft version when the check passes within "
                               "MODEL_CHECK_WAIT_SECONDS; 400 with the reason when it refuses the archive; 202 with "
                               "the upload to poll while the check still runs.")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        card = data.validated_data.get("card") or {}
        if isinstance(card, str):
            try:
                card = loads_checked(card, where="'card'")
            except json.JSONDecodeError:
                raise InvalidInput("'card' is not valid JSON.") from None
            except ValueError as exc:
                raise InvalidInput(f"{exc}.") from None
        staged = uploads.model_upload_create(
            actor=actor_of(request), name=data.validated_data["name"], task=data.validated_data["task"],
            archive=data.validated_data["archive"], card=card,
            description=data.validated_data.get("description", ""),
        )
        upload = uploads.model_upload_wait(staged)
        if upload.status == JobStatus.FAILED:
            raise InvalidArchive(upload.error, details={"upload": upload.pk})
        if upload.status == JobStatus.DONE and upload.version is not None:
            return Response(VersionSerializer(upload.version).data, status=status.HTTP_201_CREATED)
        return Response(ModelUploadSerializer(upload).data, status=status.HTTP_202_ACCEPTED)


class ModelUploadDetailApi(APIView):
    required_capability = Cap.MODEL_REGISTER

    @extend_schema(responses=ModelUploadSerializer, summary="A model upload and its check")
    def get(self, request: Request, pk: int) -> Response:
        return Response(ModelUploadSerializer(selectors.model_upload_get(actor=actor_of(request), pk=pk)).data)


class ModelDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=ModelSerializer, summary="A model, its versions and aliases")
    def get(self, request: Request, name: str) -> Response:
        return Response(ModelSerializer(selectors.model_get(actor=actor_of(request), name=name)).data)


class VersionDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=VersionDetailSerializer, summary="A version with its card and lifecycle")
    def get(self, request: Request, name: str, version: int) -> Response:
        found = selectors.version_get(actor=actor_of(request), name=name, version=version)
        return Response(VersionDetailSerializer(found).data)


class VersionTransitionApi(APIView):
    """submit (owner), approve / reject / retire (reviewer, not the submitter)."""

    required_capability = Cap.MODEL_READ  # the service checks the right for each action

    class InputSerializer(StrictSerializer):
        comment = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")

    @extend_schema(request=InputSerializer, responses=VersionDetailSerializer, summary="Move a version through review")
    def post(self, request: Request, name: str, version: int, action: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        moved = registry.model_version_transition(
            actor=actor, version=found, action=action, comment=data.validated_data["comment"]
        )
        return Response(VersionDetailSerializer(moved).data)


class AliasMoveApi(APIView):
    required_capability = Cap.MODEL_REGISTER

    class InputSerializer(StrictSerializer):
        version = serializers.IntegerField(min_value=1)

    @extend_schema(
        request=InputSerializer,
        responses=inline_serializer("AliasMoved", {"model": serializers.CharField(), "alias": serializers.CharField(),
                                                   "version": serializers.IntegerField()}),
        summary="Point an alias (production, staging) at an approved version",
    )
    def put(self, request: Request, name: str, alias: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        version = selectors.version_get(actor=actor, name=name, version=data.validated_data["version"])
        moved = registry.alias_move(actor=actor, model=version.model, alias=alias, version=version)
        return Response({"model": name, "alias": moved.name, "version": version.version})


class PredictionOutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    request_id = serializers.CharField()
    status = serializers.CharField()
    predictions = serializers.ListField(child=serializers.DictField())
    device = serializers.CharField()
    compute_ms = serializers.FloatField(allow_null=True)
    receipt = serializers.DictField(allow_null=True)


class PredictApi(APIView):
    """`{name}` is `name` (the production alias), `name@alias` or `name@3`."""

    required_capability = Cap.MODEL_PREDICT

    class InputSerializer(StrictSerializer):
        inputs = serializers.ListField(child=serializers.JSONField(), allow_empty=False, min_length=1)
        subject = serializers.CharField(required=False, allow_blank=True, max_length=200, default="",
                                        help_text="the data subject these inputs are about (for erasure)")
        explain = serializers.BooleanField(required=False, default=False,
                                           help_text="also explain each input (SHAP); at most 8 inputs")
        max_evals = serializers.IntegerField(required=False, help_text="the explanation budget (model evaluations)")

    @extend_schema(request=InputSerializer, responses=PredictionOutputSerializer, summary="Predict")
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        version = selectors.version_resolve_for_serving(actor=actor, ref=name)
        inputs, explain = data.validated_data["inputs"], data.validated_data["explain"]
        if explain:
            if len(inputs) > 8:
                raise InvalidInput("With explain, send at most 8 inputs; explain more with POST /predictions/{id}/explain.")
            max_evals = data.validated_data.get("max_evals", settings.EXPLAIN_DEFAULT_EVALS)
            if not MIN_EVALS <= max_evals <= MAX_EVALS:
                raise InvalidInput(f"max_evals must be between {MIN_EVALS} and {MAX_EVALS}; got {max_evals}.")
        admitted = predictions.prediction_create(
            actor=actor, version=version, inputs=inputs,
            subject=data.validated_data["subject"], request_id=getattr(request._request, "request_id", ""),
        )
        answer = predictions.prediction_wait(admitted)
        if explain:
            prediction = admitted.stored
            prediction.refresh_from_db()
            asked = [explanations.explanation_create(actor=actor, prediction=prediction, row=i, max_evals=max_evals,
                                                     waited_for=True)
                     for i in range(len(inputs))]
            until = time.monotonic() + settings.EXPLAIN_WAIT_SECONDS  # one wait for them all, not one each
            answer["explanations"] = [
                explanations.explanation_response(
                    explanations.explanation_wait(e, timeout=max(until - time.monotonic(), 0.0)))
                for e in asked
            ]
        return Response(answer)


class PredictionDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=PredictionOutputSerializer, summary="A stored prediction")
    def get(self, request: Request, pk: int) -> Response:
        prediction = selectors.prediction_get(actor=actor_of(request), pk=pk)
        return Response(predictions.prediction_response(prediction))


class ExplainApi(APIView):
    required_capability = Cap.MODEL_PREDICT

    class InputSerializer(StrictSerializer):
        row = serializers.IntegerField(required=False, default=0, help_text="which input of the prediction")
        max_evals = serializers.IntegerField(required=False, help_text=f"model evaluations, {MIN_EVALS} to {MAX_EVALS}")

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
                   summary="Explain a stored prediction (SHAP); 202 while it is still computing")
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        prediction = selectors.prediction_get(actor=actor, pk=pk)
        asked = explanations.explanation_create(
            actor=actor, prediction=prediction, row=data.validated_data["row"],
            max_evals=data.validated_data.get("max_evals"), waited_for=True,
        )
        explanation = explanations.explanation_wait(asked)
        done = explanation.status in ("done", "failed")
        return Response(explanations.explanation_response(explanation),
                        status=status.HTTP_201_CREATED if done else status.HTTP_202_ACCEPTED)


class ExplanationDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="An explanation: attributions, base value, residual")
    def get(self, request: Request, pk: int) -> Response:
        found = selectors.explanation_get(actor=actor_of(request), pk=pk)
        return Response(explanations.explanation_response(found))


class GlobalExplanationListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.REPORT_CREATE}

    class InputSerializer(StrictSerializer):
        dataset = serializers.ChoiceField(
            choices=GlobalSource.values, default=GlobalSource.UPLOAD,
            help_text="upload (send `file`), predictions (the latest rows the version served) or demo "
            "(the shipped evaluation set of the demo models)",
        )
        file = serializers.FileField(required=False, help_text="CSV ('text' column, or one column per feature) "
                                     "or JSON lines, as for batch jobs")
        sample_size = serializers.IntegerField(required=False, help_text="rows explained (a seeded draw); "
                                               "default 40 for text, 200 for tabular")
        max_evals = serializers.IntegerField(required=False, help_text=f"per row, {MIN_EVALS} to {MAX_EVALS}")

    @extend_schema(responses={200: OBJECT_LIST}, summary="Global explanations of a model version")
    def get(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        return Response([global_explanations.global_explanation_response(job)
                         for job in selectors.global_explanation_list(actor=actor, version=found)])

    @extend_schema(request={"multipart/form-data": InputSerializer, "application/json": InputSerializer},
                   responses={202: OpenApiTypes.OBJECT},
                   summary="Compute a global explanation (mean |SHAP| over a sample; a job on the workers)")
    def post(self, request: Request, name: str, version: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        upload = data.validated_data.get("file")
        job = global_explanations.global_explanation_create(
            actor=actor, version=found, source=data.validated_data["dataset"], upload=upload,
            upload_name=getattr(upload, "name", "") or "", sample_size=data.validated_data.get("sample_size"),
            max_evals=data.validated_data.get("max_evals"),
        )
        return Response(global_explanations.global_explanation_response(job), status=status.HTTP_202_ACCEPTED)


class GlobalExplanationDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A global explanation: progress, then the ranking")
    def get(self, request: Request, pk: int) -> Response:
        found = selectors.global_explanation_get(actor=actor_of(request), pk=pk)
        return Response(global_explanations.global_explanation_response(found))


class TrainingDatasetListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.MODEL_REGISTER}

    class InputSerializer(StrictSerializer):
        model = serializers.CharField(max_length=60, help_text="the registered model the rows are for")
        file = serializers.FileField(help_text="CSV with columns text and label (a label name or its index)")
        name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        epsilon_cap = serializers.FloatField(help_text="the most privacy loss all runs together may spend")
        delta_cap = serializers.FloatField(help_text="the delta every run's epsilon is stated at; below 1/rows")

    @extend_schema(responses={200: OBJECT_LIST}, summary="Training datasets, with their privacy budgets",
                   operation_id="training_datasets_list")
    def get(self, request: Request) -> Response:
        return Response([finetuning.dataset_response(d) for d in selectors.dataset_list(actor=actor_of(request))])

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: OpenApiTypes.OBJECT},
                   summary="Upload a training dataset under a privacy budget cap")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        upload = data.validated_data["file"]
        dataset = finetuning.dataset_create(
            actor=actor, model=selectors.model_get(actor=actor, name=data.validated_data["model"]), upload=upload,
            name=data.validated_data["name"] or upload.name, epsilon_cap=data.validated_data["epsilon_cap"],
            delta_cap=data.validated_data["delta_cap"],
        )
        return Response(finetuning.dataset_response(dataset), status=status.HTTP_201_CREATED)


class TrainingDatasetDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A training dataset: its budget and ledger (never its rows)")
    def get(self, request: Request, pk: int) -> Response:
        return Response(finetuning.dataset_response(selectors.dataset_get(actor=actor_of(request), pk=pk)))


class FineTuneListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.MODEL_REGISTER}

    class InputSerializer(StrictSerializer):
        dataset = serializers.IntegerField()
        model = serializers.CharField(max_length=60)
        base_version = serializers.IntegerField()
        target_epsilon = serializers.FloatField()
        target_delta = serializers.FloatField(required=False, help_text="default: the dataset's delta cap")
        epochs = serializers.IntegerField(required=False, help_text="default 3")
        batch_size = serializers.IntegerField(required=False, help_text="expected batch (Poisson sampling); default 32")
        learning_rate = serializers.FloatField(required=False, help_text="AdamW; default 5e-4")
        lr_schedule = serializers.ChoiceField(choices=list(private.SCHEDULES), required=False,
                                              help_text="; ".join(f"{k}: {v}" for k, v in private.SCHEDULES.items())
                                              + "; default constant")
        max_grad_norm = serializers.FloatField(required=False, help_text="per-sample clipping norm; default 1.0")

    @extend_schema(responses={200: OBJECT_LIST}, summary="Private fine-tuning jobs",
                   operation_id="fine_tunes_list")
    def get(self, request: Request) -> Response:
        return Response([finetuning.job_response(j) for j in selectors.finetune_list(actor=actor_of(request))[:100]])

    @extend_schema(request=InputSerializer, responses={202: OpenApiTypes.OBJECT},
                   summary="Fine-tune a version with DP-SGD (reserves the budget, then a job on the workers)")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        values = dict(data.validated_data)
        dataset = selectors.dataset_get(actor=actor, pk=values.pop("dataset"))
        base = selectors.version_get(actor=actor, name=values.pop("model"), version=values.pop("base_version"))
        job = finetuning.finetune_create(actor=actor, dataset=dataset, base_version=base, **values)
        return Response(finetuning.job_response(job), status=status.HTTP_202_ACCEPTED)


class FineTuneDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A fine-tuning job: step, epoch, loss, epsilon spent")
    def get(self, request: Request, pk: int) -> Response:
        return Response(finetuning.job_response(selectors.finetune_get(actor=actor_of(request), pk=pk)))


class FineTuneCancelApi(APIView):
    required_capability = Cap.MODEL_REGISTER

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Cancel a fine-tuning job")
    def post(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        job = finetuning.finetune_cancel(actor=actor, job=selectors.finetune_get(actor=actor, pk=pk))
        return Response(finetuning.job_response(job))


class JobSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    input_name = serializers.CharField()
    status = serializers.CharField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class JobListCreateApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "POST": Cap.MODEL_PREDICT}

    class InputSerializer(StrictSerializer):
        file = serializers.FileField(help_text="CSV (a 'text' column, or one column per feature) or JSON lines")

    @extend_schema(responses=JobSerializer(many=True), summary="Batch jobs of a model")
    def get(self, request: Request, name: str) -> Response:
        actor = actor_of(request)
        model = selectors.model_get(actor=actor, name=name.split("@", 1)[0])  # 404 for a model that is not there
        found = selectors.job_list(actor=actor).filter(model_version__model=model)
        return Response(JobSerializer(found[:200], many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={202: JobSerializer},
                   summary="Start a batch job")
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        version = selectors.version_resolve_for_serving(actor=actor, ref=name)
        upload = data.validated_data["file"]
        job = jobs.batch_job_create(actor=actor, version=version, upload=upload, name=upload.name or "upload")
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=JobSerializer, summary="A batch job's status and progress")
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobSerializer(selectors.job_get(actor=actor_of(request), pk=pk)).data)


class JobCancelApi(APIView):
    required_capability = Cap.MODEL_PREDICT

    @extend_schema(request=None, responses=JobSerializer, summary="Cancel a batch job")
    def post(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        job = jobs.batch_job_cancel(actor=actor, job=selectors.job_get(actor=actor, pk=pk))
        return Response(JobSerializer(job).data)


class JobResultsApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses={(200, "text/csv"): bytes}, summary="A finished job's results (CSV)")
    def get(self, request: Request, pk: int) -> Any:
        job = selectors.job_get(actor=actor_of(request), pk=pk)
        if job.status != JobStatus.DONE:
            raise JobNotFinished(f"The job is {job.status}; results exist once it is done.")
        try:
            handle = default_storage.open(job.result_path, "rb")
        except FileNotFoundError:
            raise JobResultsGone(
                f"The results of job {job.pk} are no longer in the artifact store; run the job again."
            ) from None
        return FileResponse(handle, as_attachment=True, filename=f"job-{job.pk}-results.csv",
                            content_type="text/csv")
