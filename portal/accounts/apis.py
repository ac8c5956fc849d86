from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts import selectors, services
from portal.accounts.roles import Cap, Role
from portal.web.api import StrictSerializer, actor_of

ROLE_CHOICES = [r.value for r in Role]


class MeApi(APIView):
    required_capability = None

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        username = serializers.CharField()
        organization = serializers.CharField()
        organization_id = serializers.IntegerField()
        role = serializers.CharField()
        capabilities = serializers.ListField(child=serializers.CharField())
        via_token = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer, summary="Who am I, in which organisation")
    def get(self, request: Request) -> Response:
        actor = actor_of(request)
        data = {
            "username": actor.user.username,
            "organization": actor.organization.slug,
            "organization_id": actor.organization.pk,
            "role": actor.role.value,
            "capabilities": sorted(c.value for c in actor.capabilities),
            "via_token": actor.token is not None,
        }
        return Response(self.OutputSerializer(data).data)


class OrganizationListApi(APIView):
    required_capability = Cap.ORG_READ

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        id = serializers.IntegerField()
        name = serializers.CharField()
        slug = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True), summary="Organisations I belong to")
    def get(self, request: Request) -> Response:
        organizations = selectors.organization_list_for_actor(actor=actor_of(request))
        return Response(self.OutputSerializer(organizations, many=True).data)


class MemberOutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class InvitationOutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    organization = serializers.CharField(source="organization.slug")
    organization_name = serializers.CharField(source="organization.name")
    username = serializers.CharField()
    role = serializers.CharField()
    status = serializers.CharField()
    invited_by = serializers.CharField(source="invited_by.username")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class MemberListCreateApi(APIView):
    required_capability = Cap.ORG_MANAGE

    class InputSerializer(StrictSerializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=ROLE_CHOICES)

    @extend_schema(responses=MemberOutputSerializer(many=True), summary="Members of the organisation")
    def get(self, request: Request) -> Response:
        members = selectors.membership_list(actor=actor_of(request))
        return Response(MemberOutputSerializer(members, many=True).data)

    @extend_schema(request=InputSerializer, responses={202: InvitationOutputSerializer},
                   summary="Invite a member",
                   description="Invites the user of that name, who becomes a member by accepting "
                               "(POST /invitations/{id}/accept). The answer is the same whether or not "
                               "the user exists.")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            actor=actor_of(request), username=data.validated_data["username"],
            role=Role(data.validated_data["role"]),
        )
        return Response(InvitationOutputSerializer(invitation).data, status=status.HTTP_202_ACCEPTED)


class SentInvitationListApi(APIView):
    required_capability = Cap.ORG_MANAGE

    @extend_schema(responses=InvitationOutputSerializer(many=True), summary="Invitations the organisation sent")
    def get(self, request: Request) -> Response:
        invitations = selectors.invitation_list_sent(actor=actor_of(request))
        return Response(InvitationOutputSerializer(invitations, many=True).data)


class SentInvitationRevokeApi(APIView):
    required_capability = Cap.ORG_MANAGE

    @extend_schema(request=None, responses={200: InvitationOutputSerializer}, summary="Revoke an invitation")
    def post(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        invitation = services.invitation_revoke(
            actor=actor, invitation=selectors.invitation_get_sent(actor=actor, pk=pk))
        return Response(InvitationOutputSerializer(invitation).data)


class MyInvitationListApi(APIView):
    """Invitations waiting for the signed-in user, who may belong to no organisation yet."""

    for_any_signed_in_user = True

    @extend_schema(responses=InvitationOutputSerializer(many=True), summary="Invitations waiting for me")
    def get(self, request: Request) -> Response:
        invitations = services.invitations_for_user(user=request.user)  # type: ignore[arg-type]
        return Response(InvitationOutputSerializer(invitations, many=True).data)


class MyInvitationAnswerApi(APIView):
    for_any_signed_in_user = True

    @extend_schema(request=None, responses={200: InvitationOutputSerializer},
                   summary="Accept or decline an invitation waiting for me")
    def post(self, request: Request, pk: int, answer: str) -> Response:
        invitation = services.invitation_answer(user=request.user, invitation_id=pk,  # type: ignore[arg-type]
                                                accept=answer == "accept")
        return Response(InvitationOutputSerializer(invitation).data)


class MemberUpdateApi(APIView):
    required_capability = Cap.ORG_MANAGE

    class InputSerializer(StrictSerializer):
        role = serializers.ChoiceField(choices=ROLE_CHOICES)

    @extend_schema(request=InputSerializer, responses=MemberOutputSerializer, summary="Change a member's role")
    def patch(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        membership = selectors.membership_get_for_actor(actor=actor, pk=pk)
        membership = services.membership_role_change(
            actor=actor, membership=membership, role=Role(data.validated_data["role"])
        )
        return Response(MemberOutputSerializer(membership).data)

    @extend_schema(request=None, responses={204: None},
                   summary="Remove a member (their tokens for the organisation are revoked)")
    def delete(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        services.membership_remove(actor=actor, membership=selectors.membership_get_for_actor(actor=actor, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenOutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    role = serializers.CharField()
    username = serializers.CharField(source="user.username")
    status = serializers.CharField()
    rate_per_minute = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class TokenListCreateApi(APIView):
    """Tokens of the caller (all of the organisation's for an admin); create one."""

    required_capability = Cap.ORG_READ

    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=80)
        role = serializers.ChoiceField(choices=ROLE_CHOICES, default=Role.CONSUMER.value)
        expires_in_days = serializers.IntegerField(
            default=90, min_value=1, help_text="at most the organisation's limit (API_TOKEN_MAX_DAYS by default)")
        rate_per_minute = serializers.IntegerField(
            allow_null=True, default=None, min_value=1,
            help_text="requests a minute; null: API_TOKEN_RATE_PER_MINUTE; at most the organisation's limit")

    class CreatedSerializer(TokenOutputSerializer):
        token = serializers.CharField(help_text="The secret. Shown this once; store it now.")

    @extend_schema(responses=TokenOutputSerializer(many=True), summary="List API tokens")
    def get(self, request: Request) -> Response:
        tokens = selectors.token_list_for_actor(actor=actor_of(request))
        return Response(TokenOutputSerializer(tokens, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: CreatedSerializer}, summary="Create an API token")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new = services.token_create(
            actor=actor_of(request),
            name=data.validated_data["name"],
            role=Role(data.validated_data["role"]),
            expires_in_days=data.validated_data["expires_in_days"],
            rate_per_minute=data.validated_data["rate_per_minute"],
        )
        body: dict[str, Any] = dict(TokenOutputSerializer(new.token).data)
        body["token"] = new.secret
        return Response(body, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    required_capability = Cap.ORG_READ

    @extend_schema(responses={200: TokenOutputSerializer}, summary="Revoke an API token (answers the revoked token)")
    def delete(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        token = selectors.token_get_for_actor(actor=actor, pk=pk)
        token = services.token_revoke(actor=actor, token=token)
        return Response(TokenOutputSerializer(token).data)
