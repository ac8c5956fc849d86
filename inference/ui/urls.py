from django.urls import path, re_path

from inference.ui import evaluations, explanations, guardrails, privacy, reviews, usage, views

urlpatterns = [
    path("models/", views.model_list, name="models"),
    path("completions/<int:pk>/", views.completion_detail, name="completion-detail"),
    path("models/register/", views.model_register, name="model-register"),
    path("models/<slug:name>/", views.model_detail, name="model-detail"),
    path("models/<slug:name>/versions/<int:version>/", views.version_action, name="version-action"),
    path("models/<slug:name>/versions/<int:version>/evaluations/", evaluations.evaluation_create,
         name="evaluation-create"),
    re_path(r"^models/(?P<name>[-\w]+(@[-\w]+)?)/playground/$", views.playground, name="playground"),
    re_path(r"^models/(?P<name>[-\w]+(@[-\w]+)?)/playground/predict/$", views.playground_predict, name="playground-predict"),
    path("models/<slug:name>/versions/<int:version>/global-explanations/", explanations.global_explanation_create,
         name="global-explanation-create"),
    path("predictions/<int:pk>/", explanations.prediction_detail, name="prediction"),
    path("predictions/<int:pk>/explain/", explanations.prediction_explain, name="prediction-explain"),
    path("explanations/<int:pk>/", explanations.explanation_detail, name="explanation"),
    path("global-explanations/<int:pk>/", explanations.global_explanation_detail, name="global-explanation"),
    path("privacy/", privacy.privacy_home, name="privacy"),
    path("privacy/datasets/<int:pk>/", privacy.dataset_detail, name="privacy-dataset"),
    path("fine-tunes/<int:pk>/", privacy.finetune_detail, name="fine-tune"),
    path("fine-tunes/<int:pk>/cancel/", privacy.finetune_cancel, name="fine-tune-cancel"),
    path("reviews/", reviews.review_inbox, name="reviews"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("usage/card/", views.usage_card, name="usage-card"),
    path("usage/", usage.usage_page, name="usage"),
    path("guardrails/", guardrails.guardrail_policy, name="guardrails"),
    path("models/<slug:name>/guardrails/", guardrails.guardrail_policy, name="model-guardrails"),
]
