"""Private fine-tuning through the API: training datasets under a privacy budget, and runs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.ml import canaries, dp_accounting
from inference.outputs import CanaryAuditOutput, FineTuneJobOutput, TrainingDatasetOutput
from inference.services import canary_audits, finetuning, training_datasets
from portal.accounts.roles import Cap
from portal.web.api import StrictSerializer, actor_of


class TrainingDatasetListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.MODEL_REGISTER}

    class InputSerializer(StrictSerializer):
        model = serializers.CharField(max_length=60, help_text="the registered model the rows are for")
        file = serializers.FileField(help_text="CSV with columns text and label (a label name or its index)")
        name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        epsilon_cap = serializers.FloatField(help_text="the most privacy loss all runs together may spend")
        delta_cap = serializers.FloatField(help_text="the delta every run's epsilon is stated at; below 1/rows")

    @extend_schema(responses={200: TrainingDatasetOutput(many=True)}, summary="Training datasets, with their privacy budgets",
                   operation_id="training_datasets_list")
    def get(self, request: Request) -> Response:
        return Response(TrainingDatasetOutput(selectors.dataset_list(actor=actor_of(request)), many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: TrainingDatasetOutput},
                   summary="Upload a training dataset under a privacy budget cap")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        upload = data.validated_data["file"]
        dataset = training_datasets.dataset_create(
            actor=actor, model=selectors.model_get(actor=actor, name=data.validated_data["model"]), upload=upload,
            name=data.validated_data["name"] or upload.name, epsilon_cap=data.validated_data["epsilon_cap"],
            delta_cap=data.validated_data["delta_cap"],
        )
        return Response(TrainingDatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class TrainingDatasetDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=TrainingDatasetOutput, summary="A training dataset: its budget and ledger (never its rows)")
    def get(self, request: Request, pk: int) -> Response:
        return Response(TrainingDatasetOutput(selectors.dataset_get(actor=actor_of(request), pk=pk)).data)


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
        lr_schedule = serializers.ChoiceField(choices=list(dp_accounting.SCHEDULES), required=False,
                                              help_text="; ".join(f"{k}: {v}" for k, v in dp_accounting.SCHEDULES.items())
                                              + "; default constant")
        max_grad_norm = serializers.FloatField(required=False, help_text="per-sample clipping norm; default 1.0")
        lora_rank = serializers.IntegerField(required=False, help_text="generative bases: the LoRA adapters' rank; "
                                             "default 8")
        lora_alpha = serializers.FloatField(required=False, help_text="generative bases: LoRA's alpha; default 16")
        lora_targets = serializers.ListField(child=serializers.CharField(max_length=60), required=False,
                                             max_length=16, help_text="generative bases: the Linear layers adapted, "
                                             "by name; default q_proj, v_proj")

    @extend_schema(responses={200: FineTuneJobOutput(many=True)}, summary="Private fine-tuning jobs",
                   operation_id="fine_tunes_list")
    def get(self, request: Request) -> Response:
        return Response(FineTuneJobOutput(selectors.finetune_list(actor=actor_of(request))[:100], many=True).data)

    @extend_schema(request=InputSerializer, responses={202: FineTuneJobOutput},
                   summary="Fine-tune a version with DP-SGD (reserves the budget, then a job on the workers)")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        values = dict(data.validated_data)
        dataset = selectors.dataset_get(actor=actor, pk=values.pop("dataset"))
        base = selectors.version_get(actor=actor, name=values.pop("model"), version=values.pop("base_version"))
        adapter = {key: values.pop(f"lora_{key}") for key in ("rank", "alpha", "targets") if f"lora_{key}" in values}
        job = finetuning.finetune_create(actor=actor, dataset=dataset, base_version=base, adapter=adapter or None,
                                         **values)
        return Response(FineTuneJobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class FineTuneDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=FineTuneJobOutput, summary="A fine-tuning job: step, epoch, loss, epsilon spent")
    def get(self, request: Request, pk: int) -> Response:
        return Response(FineTuneJobOutput(selectors.finetune_get(actor=actor_of(request), pk=pk)).data)


class FineTuneCancelApi(APIView):
    required_capability = Cap.MODEL_REGISTER

    @extend_schema(request=None, responses=FineTuneJobOutput, summary="Cancel a fine-tuning job")
    def post(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        job = finetuning.finetune_cancel(actor=actor, job=selectors.finetune_get(actor=actor, pk=pk))
        return Response(FineTuneJobOutput(job).data)


class CanaryAuditListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.MODEL_REGISTER}

    class InputSerializer(StrictSerializer):
        format = serializers.ChoiceField(choices=sorted(canaries.FORMATS), default=canary_audits.DEFAULTS["format"],
                                         help_text="the canaries' sentence: " + "; ".join(
                                             f"{k}: {v!r}" for k, v in canaries.FORMATS.items()))
        digits = serializers.IntegerField(default=canary_audits.DEFAULTS["digits"],
                                          help_text="digits of each secret: 10^digits possible secrets")
        canaries = serializers.IntegerField(default=canary_audits.DEFAULTS["canaries"])
        insertions = serializers.IntegerField(default=canary_audits.DEFAULTS["insertions"],
                                              help_text="copies of each canary in the training data")
        references = serializers.IntegerField(default=canary_audits.DEFAULTS["references"],
                                              help_text="secrets never inserted, to rank the canaries against")
        compare = serializers.BooleanField(default=canary_audits.DEFAULTS["compare"],
                                           help_text="also run the same fine-tuning without privacy (only its "
                                                     "canaries' exposures are kept)")

    @extend_schema(responses=CanaryAuditOutput(many=True), summary="Canary audits of a fine-tuned version")
    def get(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        return Response(CanaryAuditOutput(selectors.canary_audit_list(actor=actor, version=found), many=True).data)

    @extend_schema(request=InputSerializer, responses={202: CanaryAuditOutput},
                   summary="Audit a privately fine-tuned version with canaries (its fine-tuning repeated with secrets "
                           "inserted; the private run is charged to the dataset's budget)")
    def post(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)  # another tenant's: 404 first
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        audit = canary_audits.canary_audit_create(actor=actor, version=found, **data.validated_data)
        return Response(CanaryAuditOutput(audit).data, status=status.HTTP_202_ACCEPTED)


class CanaryAuditDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=CanaryAuditOutput, summary="A canary audit: progress, then the exposures and the bound")
    def get(self, request: Request, pk: int) -> Response:
        return Response(CanaryAuditOutput(selectors.canary_audit_get(actor=actor_of(request), pk=pk)).data)


class CanaryAuditCancelApi(APIView):
    required_capability = Cap.MODEL_REGISTER

    @extend_schema(request=None, responses=CanaryAuditOutput, summary="Cancel a canary audit")
    def post(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        audit = canary_audits.canary_audit_cancel(actor=actor, audit=selectors.canary_audit_get(actor=actor, pk=pk))
        return Response(CanaryAuditOutput(audit).data)
