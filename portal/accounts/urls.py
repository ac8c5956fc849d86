from django.urls import path, re_path

from portal.accounts import apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="api-me"),
    path("organizations", apis.OrganizationListApi.as_view(), name="api-organizations"),
    path("members", apis.MemberListCreateApi.as_view(), name="api-members"),
    path("members/<int:pk>", apis.MemberUpdateApi.as_view(), name="api-member"),
    path("members/invitations", apis.SentInvitationListApi.as_view(), name="api-sent-invitations"),
    path("members/invitations/<int:pk>/revoke", apis.SentInvitationRevokeApi.as_view(), name="api-invitation-revoke"),
    path("invitations", apis.MyInvitationListApi.as_view(), name="api-invitations"),
    re_path(r"^invitations/(?P<pk>\d+)/(?P<answer>accept|decline)$", apis.MyInvitationAnswerApi.as_view(),
            name="api-invitation-answer"),
    path("tokens", apis.TokenListCreateApi.as_view(), name="api-tokens"),
    path("tokens/<int:pk>", apis.TokenRevokeApi.as_view(), name="api-token"),
]
