from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.console.selectors import entry_get_for_actor, entry_list_for_actor
from audit.log import selectors as log
from audit.log.exceptions import ProofUnavailable
from audit.log.exports import log_export, public_key_pem
from audit.log.models import Checkpoint, RedactionRule, VerificationRun
from audit.log.services import (
    audit_erase_subject,
    checkpoint_create,
    checkpoint_signed,
    redaction_preview,
    redaction_rule_create,
    redaction_rule_delete,
)
from audit.log.signing import key_id, load_public_key
from audit.log.tasks import log_verify_task
from portal.accounts.roles import Cap
from portal.platform.exceptions import NotFound
from portal.web.api import StrictSerializer, actor_of


class EntrySerializer(serializers.Serializer):  # type: ignore[type-arg]
    index = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    organization_id = serializers.IntegerField(allow_null=True)
    actor_type = serializers.CharField()
    actor_id = serializers.CharField()
    actor_label = serializers.CharField()
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    request_id = serializers.CharField()
    payload = serializers.JSONField(allow_null=True)
    payload_sha256 = serializers.CharField()
    commitment = serializers.CharField()
    erased_at = serializers.DateTimeField(allow_null=True)
    leaf_hash = serializers.CharField()


class CheckpointSerializer(serializers.Serializer):  # type: ignore[type-arg]
    tree_size = serializers.IntegerField()
    root_hash = serializers.CharField()
    time = serializers.CharField()
    key_id = serializers.CharField()
    signature = serializers.CharField()


class InclusionProofSerializer(serializers.Serializer):  # type: ignore[type-arg]
    index = serializers.IntegerField()
    leaf_hash = serializers.CharField()
    tree_size = serializers.IntegerField()
    path = serializers.ListField(child=serializers.CharField())
    checkpoint = CheckpointSerializer()


class EntryListApi(APIView):
    required_capability = Cap.AUDIT_READ

    class FilterSerializer(StrictSerializer):
        actor = serializers.CharField(required=False, max_length=150)
        action = serializers.CharField(required=False, max_length=64)
        target_type = serializers.CharField(required=False, max_length=64)
        target_id = serializers.CharField(required=False, max_length=64)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        before = serializers.IntegerField(required=False, min_value=0, help_text="entries with a lower index (paging)")
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)

    class PageSerializer(serializers.Serializer):  # type: ignore[type-arg]
        results = EntrySerializer(many=True)
        next_before = serializers.IntegerField(allow_null=True, help_text="pass as `before` for the next page")

    @extend_schema(parameters=[FilterSerializer], responses=PageSerializer, summary="Search the audit log",
                   operation_id="audit_entries_list")
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        filters = dict(params.validated_data)
        limit, before = filters.pop("limit"), filters.pop("before", None)
        entries = entry_list_for_actor(viewer=actor_of(request), filters=filters)
        if before is not None:
            entries = entries.filter(index__lt=before)
        page = list(entries[:limit])
        next_before = page[-1].index if len(page) == limit else None
        return Response(
            {"results": EntrySerializer(page, many=True).data, "next_before": next_before}
        )


class EntryDetailApi(APIView):
    required_capability = Cap.AUDIT_READ

    @extend_schema(
        responses=inline_serializer(
            "AuditEntryDetail",
            {"entry": EntrySerializer(), "proof": InclusionProofSerializer(allow_null=True)},
        ),
        summary="One audit entry, with its inclusion proof when a checkpoint covers it",
    )
    def get(self, request: Request, index: int) -> Response:
        entry = entry_get_for_actor(actor=actor_of(request), index=index)
        try:
            proof: dict[str, Any] | None = log.inclusion_document(entry=entry)
        except ProofUnavailable:
            proof = None
        return Response({"entry": EntrySerializer(entry).data, "proof": proof})


class InclusionProofApi(APIView):
    """Any member may prove that an entry of their organisation (a receipt) is in the log."""

    required_capability = Cap.ORG_READ

    class QuerySerializer(StrictSerializer):
        index = serializers.IntegerField(min_value=0)

    @extend_schema(parameters=[QuerySerializer], responses=InclusionProofSerializer, summary="Inclusion proof of a receipt")
    def get(self, request: Request) -> Response:
        params = self.QuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        entry = entry_get_for_actor(actor=actor_of(request), index=params.validated_data["index"])
        return Response(log.inclusion_document(entry=entry))


class ConsistencyProofApi(APIView):
    required_capability = Cap.ORG_READ

    class QuerySerializer(StrictSerializer):
        first = serializers.IntegerField(min_value=1)
        second = serializers.IntegerField(min_value=1)

    @extend_schema(
        parameters=[QuerySerializer],
        responses=inline_serializer(
            "ConsistencyProof",
            {
                "first": serializers.IntegerField(),
                "second": serializers.IntegerField(),
                "path": serializers.ListField(child=serializers.CharField()),
            },
        ),
        summary="Consistency proof between two tree sizes",
    )
    def get(self, request: Request) -> Response:
        params = self.QuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        first, second = params.validated_data["first"], params.validated_data["second"]
        return Response(
            {"first": first, "second": second, "path": log.consistency_proof(first=first, second=second)}
        )


class CheckpointListCreateApi(APIView):
    required_capability = {"GET": Cap.ORG_READ, "POST": Cap.AUDIT_READ}

    @extend_schema(responses=CheckpointSerializer(many=True), summary="Signed checkpoints, newest first")
    def get(self, request: Request) -> Response:
        checkpoints = Checkpoint.objects.order_by("-tree_size", "-id")[:100]
        return Response([checkpoint_signed(cp).to_dict() for cp in checkpoints])

    @extend_schema(request=None, responses={201: CheckpointSerializer}, summary="Sign a checkpoint now")
    def post(self, request: Request) -> Response:
        checkpoint = checkpoint_create(force=True)
        assert checkpoint is not None
        return Response(checkpoint_signed(checkpoint).to_dict(), status=status.HTTP_201_CREATED)


class PublicKeyApi(APIView):
    """The key that signs checkpoints: public, so that anyone can verify them."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        responses=inline_serializer(
            "AuditPublicKey",
            {"key_id": serializers.CharField(), "algorithm": serializers.CharField(), "pem": serializers.CharField()},
        ),
        summary="The audit log's public key (Ed25519, PEM)",
    )
    def get(self, request: Request) -> Response:
        pem = public_key_pem()
        return Response({"key_id": key_id(load_public_key(pem)), "algorithm": "Ed25519", "pem": pem})


class VerificationApi(APIView):
    required_capability = Cap.AUDIT_READ

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        started_at = serializers.DateTimeField()
        finished_at = serializers.DateTimeField(allow_null=True)
        ok = serializers.BooleanField(allow_null=True)
        entries = serializers.IntegerField()
        checkpoints = serializers.IntegerField()
        fault_kind = serializers.CharField()
        fault_index = serializers.IntegerField(allow_null=True)
        summary = serializers.CharField()
        seconds = serializers.FloatField(allow_null=True)

    @extend_schema(responses=OutputSerializer, summary="The latest verification of the whole log")
    def get(self, request: Request) -> Response:
        run = VerificationRun.objects.first()
        if run is None:
            raise NotFound(gettext('The log has not been verified yet; POST here to verify it.'))
        return Response(self.OutputSerializer(run).data)

    @extend_schema(request=None, responses={202: None}, summary="Verify the whole log now (on a worker)")
    def post(self, request: Request) -> Response:
        log_verify_task.delay()
        return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)


class ExportApi(APIView):
    required_capability = Cap.AUDIT_READ

    @extend_schema(responses={(200, "application/zip"): bytes}, summary="Export the organisation's log (zip)")
    def get(self, request: Request) -> HttpResponse:
        actor = actor_of(request)
        data, size = log_export(actor=actor.audit_actor, organization_id=actor.organization.pk)
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="steward-audit-{actor.organization.slug}-{size}.zip"'
        return response


class ErasureCreateApi(APIView):
    """GDPR Art. 17: erase what the log stores about a data subject; the chain still verifies."""

    required_capability = Cap.ORG_MANAGE

    class InputSerializer(StrictSerializer):
        subject = serializers.CharField(max_length=200, help_text="the data subject's identifier")

    @extend_schema(
        request=InputSerializer,
        responses={201: inline_serializer(
            "ErasureResult",
            {"erased_entries": serializers.ListField(child=serializers.IntegerField()), "receipt": serializers.DictField()},
        )},
        summary="Erase a data subject's payloads",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        receipt, indexes = audit_erase_subject(
            subject=data.validated_data["subject"],
            organization_id=actor.organization.pk,
            actor=actor.audit_actor,
        )
        return Response(
            {"erased_entries": indexes, "receipt": {"index": receipt.index, "leaf_hash": receipt.leaf_hash}},
            status=status.HTTP_201_CREATED,
        )


class RedactionRuleApi(APIView):
    required_capability = Cap.ORG_MANAGE

    # `label` shadows Field.label for the type checker only: DRF's metaclass moves declared
    # fields off the class.
    class InputSerializer(StrictSerializer):
        label = serializers.CharField(max_length=32)  # type: ignore[assignment]
        pattern = serializers.CharField(max_length=500)

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        id = serializers.IntegerField()
        label = serializers.CharField()  # type: ignore[assignment]
        pattern = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True), summary="The organisation's redaction patterns")
    def get(self, request: Request) -> Response:
        rules = RedactionRule.objects.filter(organization_id=actor_of(request).organization.pk)
        return Response(self.OutputSerializer(rules, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer}, summary="Add a redaction pattern")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        rule = redaction_rule_create(actor=actor.audit_actor, organization_id=actor.organization.pk,
                                     **data.validated_data)
        return Response(self.OutputSerializer(rule).data, status=status.HTTP_201_CREATED)


class RedactionRuleDetailApi(APIView):
    required_capability = Cap.ORG_MANAGE

    @extend_schema(request=None, responses={204: None}, summary="Remove a redaction pattern (audited)")
    def delete(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        redaction_rule_delete(actor=actor.audit_actor, organization_id=actor.organization.pk, rule_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RedactionPreviewApi(APIView):
    """What the log would store of a text: nothing is stored, the text is not logged."""

    required_capability = Cap.ORG_MANAGE

    class InputSerializer(StrictSerializer):
        text = serializers.CharField(max_length=10_000, trim_whitespace=False)
        label = serializers.RegexField(r"^[A-Z][A-Z0-9_]{0,31}$", required=False, default="CANDIDATE")  # type: ignore[assignment]
        pattern = serializers.CharField(max_length=500, required=False, default="",
                                        help_text="a candidate rule, tried beside the organisation's")

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        redacted = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer,
                   summary="Try the redaction (and a candidate pattern) on a sample text")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        redacted = redaction_preview(organization_id=actor_of(request).organization.pk, **data.validated_data)
        return Response(self.OutputSerializer({"redacted": redacted}).data)
