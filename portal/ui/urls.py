from django.contrib.auth import views as auth_views
from django.urls import path

from portal.ui import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", views.language_set, name="language-set"),
    path("organization/switch/", views.organization_switch, name="organization-switch"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("members/", views.members, name="members"),
    path("invitations/<int:pk>/answer/", views.invitation_answer, name="invitation-answer"),
]
