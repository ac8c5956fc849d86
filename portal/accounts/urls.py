from django.urls import path

from portal.accounts import apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="api-me"),
    path("organizations", apis.OrganizationListApi.as_view(), name="api-organizations"),
    path("members", apis.MemberListCreateApi.as_view(), name="api-members"),
    path("members/<int:pk>", apis.MemberUpdateApi.as_view(), name="api-member"),
    path("tokens", apis.TokenListCreateApi.as_view(), name="api-tokens"),
    path("tokens/<int:pk>", apis.TokenRevokeApi.as_view(), name="api-token"),
]
