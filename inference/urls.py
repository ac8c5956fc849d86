from django.urls import path, re_path

from inference.apis import (
    batch,
    catalog,
    completions,
    evaluation,
    openai_compat,
    openai_embeddings,
    openai_moderations,
    reviews,
    serving,
    training,
    usage,
)

urlpatterns = [
    path("models", catalog.ModelListRegisterApi.as_view(), name="api-models"),
    path("reviews", reviews.ReviewListApi.as_view(), name="api-reviews"),
    path("usage", usage.UsageApi.as_view(), name="api-usage"),
    path("model-uploads/<int:pk>", catalog.ModelUploadDetailApi.as_view(), name="api-model-upload"),
    path("models/<slug:name>", catalog.ModelDetailApi.as_view(), name="api-model"),
    path("models/<slug:name>/versions/<int:version>", catalog.VersionDetailApi.as_view(), name="api-version"),
    re_path(r"^models/(?P<name>[-\w]+)/versions/(?P<version>\d+)/(?P<action>submit|approve|reject|retire)$",
            catalog.VersionTransitionApi.as_view(), name="api-version-transition"),
    path("models/<slug:name>/aliases/<slug:alias>", catalog.AliasMoveApi.as_view(), name="api-alias"),
    re_path(r"^models/(?P<name>[-\w]+(@[-\w]+)?)/predict$", serving.PredictApi.as_view(), name="api-predict"),
    re_path(r"^models/(?P<name>[-\w]+(@[-\w]+)?)/jobs$", batch.JobListCreateApi.as_view(), name="api-jobs"),
    path("predictions/<int:pk>", serving.PredictionDetailApi.as_view(), name="api-prediction"),
    path("completions", completions.CompletionListApi.as_view(), name="api-completions"),
    path("completions/<int:pk>", completions.CompletionDetailApi.as_view(), name="api-completion"),
    path("predictions/<int:pk>/explain", serving.ExplainApi.as_view(), name="api-explain"),
    path("explanations/<int:pk>", serving.ExplanationDetailApi.as_view(), name="api-explanation"),
    path("models/<slug:name>/versions/<int:version>/global-explanations", serving.GlobalExplanationListCreateApi.as_view(),
         name="api-global-explanations"),
    path("global-explanations/<int:pk>", serving.GlobalExplanationDetailApi.as_view(), name="api-global-explanation"),
    path("models/<slug:name>/versions/<int:version>/evaluations", evaluation.EvaluationListCreateApi.as_view(),
         name="api-evaluations"),
    path("evaluations/<int:pk>", evaluation.EvaluationDetailApi.as_view(), name="api-evaluation"),
    path("training-datasets", training.TrainingDatasetListCreateApi.as_view(), name="api-training-datasets"),
    path("training-datasets/<int:pk>", training.TrainingDatasetDetailApi.as_view(), name="api-training-dataset"),
    path("fine-tunes", training.FineTuneListCreateApi.as_view(), name="api-fine-tunes"),
    path("fine-tunes/<int:pk>", training.FineTuneDetailApi.as_view(), name="api-fine-tune"),
    path("fine-tunes/<int:pk>/cancel", training.FineTuneCancelApi.as_view(), name="api-fine-tune-cancel"),
    path("jobs/<int:pk>", batch.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:pk>/cancel", batch.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<int:pk>/results", batch.JobResultsApi.as_view(), name="api-job-results"),
]

# OpenAI's paths, mounted at /v1/ (portal/urls.py)
openai_urlpatterns = [
    path("chat/completions", openai_compat.ChatCompletionsApi.as_view(), name="openai-chat-completions"),
    path("completions", openai_compat.CompletionsApi.as_view(), name="openai-completions"),
    path("embeddings", openai_embeddings.EmbeddingsApi.as_view(), name="openai-embeddings"),
    path("moderations", openai_moderations.ModerationsApi.as_view(), name="openai-moderations"),
    path("models", openai_compat.ModelListApi.as_view(), name="openai-models"),
    re_path(r"^models/(?P<ref>[-\w]+(@[-\w]+)?)$", openai_compat.ModelDetailApi.as_view(), name="openai-model"),
]
