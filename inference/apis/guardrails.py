"""Guardrail policies: the organisation's, and a model's own (which replaces the organisation's)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.models import GuardAction, GuardrailPolicy
from inference.services import guardrails
from portal.accounts.roles import Cap
from portal.platform.exceptions import NotFound
from portal.web.api import StrictSerializer, actor_of


class PolicyInput(StrictSerializer):
    mask_pii = serializers.BooleanField(required=False, help_text="mask PII in the prompt before the model sees it")
    moderation_model = serializers.CharField(required=False, max_length=200,
                                             help_text="the moderation model: name, name@alias or name@version")
    categories = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=32,
                                       help_text="the categories checked; empty: all the moderation model scores")
    input_action = serializers.ChoiceField(choices=GuardAction.choices, required=False)
    input_threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
    output_action = serializers.ChoiceField(choices=GuardAction.choices, required=False)
    output_threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
    blocked_patterns = serializers.ListField(child=serializers.CharField(max_length=500), required=False,
                                             max_length=guardrails.MAX_PATTERNS,
                                             help_text="RE2 patterns: a prompt that matches is refused, an output stopped")
    max_output_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1_000_000)


class PolicyOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    scope = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    mask_pii = serializers.BooleanField()
    moderation_model = serializers.CharField()
    categories = serializers.ListField(child=serializers.CharField())
    input_action = serializers.CharField()
    input_threshold = serializers.FloatField()
    output_action = serializers.CharField()
    output_threshold = serializers.FloatField()
    blocked_patterns = serializers.ListField(child=serializers.CharField())
    max_output_tokens = serializers.IntegerField(allow_null=True)
    revision = serializers.IntegerField()
    updated_by = serializers.CharField(source="updated_by.username")
    updated_at = serializers.DateTimeField()

    def get_scope(self, policy: GuardrailPolicy) -> str:
        return "model" if policy.model_id else "organisation"

    def get_model(self, policy: GuardrailPolicy) -> str | None:
        return policy.model.name if policy.model is not None else None


class ModelPolicyOutput(serializers.Serializer):  # type: ignore[type-arg]
    own = PolicyOutput(allow_null=True, help_text="the model's own policy; null: it follows the organisation's")
    effective = PolicyOutput(allow_null=True, help_text="the policy its completions run under; null: none")


def _policy(policy: GuardrailPolicy | None) -> Any:
    return PolicyOutput(policy).data if policy is not None else None


class OrganisationPolicyApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "PUT": Cap.ORG_MANAGE, "DELETE": Cap.ORG_MANAGE}

    @extend_schema(responses={200: PolicyOutput}, summary="The organisation's guardrail policy")
    def get(self, request: Request) -> Response:
        policy, _ = guardrails.policy_get(actor=actor_of(request))
        if policy is None:
            raise NotFound(gettext("The organisation has no guardrail policy: its generative models' prompts and outputs are not checked."))
        return Response(PolicyOutput(policy).data)

    @extend_schema(request=PolicyInput, responses={200: PolicyOutput},
                   summary="Set the organisation's guardrail policy (fields left out keep their value; audited)")
    def put(self, request: Request) -> Response:
        data = PolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        policy = guardrails.policy_set(actor=actor_of(request), values=dict(data.validated_data))
        return Response(PolicyOutput(policy).data)

    @extend_schema(request=None, responses={204: None}, summary="Remove the organisation's guardrail policy (audited)")
    def delete(self, request: Request) -> Response:
        guardrails.policy_remove(actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelPolicyApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "PUT": Cap.MODEL_REVIEW, "DELETE": Cap.MODEL_REVIEW}

    @extend_schema(responses={200: ModelPolicyOutput},
                   summary="A model's guardrail policy: its own, and the one its completions run under")
    def get(self, request: Request, name: str) -> Response:
        actor = actor_of(request)
        own, model = guardrails.policy_get(actor=actor, model_name=name)
        assert model is not None
        effective = selectors.guardrail_policy_for(organization_id=actor.organization.pk, model_id=model.pk)
        return Response({"own": _policy(own), "effective": _policy(effective)})

    @extend_schema(request=PolicyInput, responses={200: PolicyOutput},
                   summary="Give a model its own guardrail policy, replacing the organisation's for it (audited)")
    def put(self, request: Request, name: str) -> Response:
        data = PolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        policy = guardrails.policy_set(actor=actor_of(request), model_name=name, values=dict(data.validated_data))
        return Response(PolicyOutput(policy).data)

    @extend_schema(request=None, responses={204: None},
                   summary="Remove a model's own policy: it follows the organisation's again (audited)")
    def delete(self, request: Request, name: str) -> Response:
        guardrails.policy_remove(actor=actor_of(request), model_name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)
