"""The registry through the API: models, versions and their reviews, aliases, uploads."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.exceptions import InvalidArchive, InvalidInput
from inference.models import Task
from inference.services import cards, registry, uploads
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.parsers import loads_checked
from portal.web.api import StrictSerializer, actor_of


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
                      "(text-classification, text-generation, text-embedding), or model.onnx + schema.json "
                      "(tabular-classification); or a single .gguf file (text-generation), converted on a worker")
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
                raise InvalidInput(gettext('%(exc)s.') % {"exc": exc}) from None
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
    required_capability = Cap.MODEL_READ  # editing and deleting: the service checks MODEL_REGISTER

    class EditSerializer(StrictSerializer):
        # values are checked as text by the service (a CharField would turn 3 into "3")
        card = serializers.DictField(child=serializers.JSONField(), allow_empty=False,
                                     help_text=f"the card fields to change (text, at most {cards.CARD_MAX_CHARS} "
                                               "characters each); the others stay")

    @extend_schema(responses=VersionDetailSerializer, summary="A version with its card and lifecycle")
    def get(self, request: Request, name: str, version: int) -> Response:
        found = selectors.version_get(actor=actor_of(request), name=name, version=version)
        return Response(VersionDetailSerializer(found).data)

    @extend_schema(request=EditSerializer, responses=VersionDetailSerializer,
                   summary="Edit the model card of a draft or rejected version (audited)")
    def patch(self, request: Request, name: str, version: int) -> Response:
        data = self.EditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        edited = cards.model_card_edit(actor=actor, version=found, changes=data.validated_data["card"])
        return Response(VersionDetailSerializer(edited).data)

    @extend_schema(request=None, responses={204: None}, summary="Delete a draft version (audited)")
    def delete(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        cards.model_version_delete(actor=actor, version=selectors.version_get(actor=actor, name=name, version=version))
        return Response(status=status.HTTP_204_NO_CONTENT)


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
