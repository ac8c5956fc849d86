from django.urls import path, re_path

from inference import apis

urlpatterns = [
    path("models", apis.ModelListRegisterApi.as_view(), name="api-models"),
    path("model-uploads/<int:pk>", apis.ModelUploadDetailApi.as_view(), name="api-model-upload"),
    path("models/<slug:name>", apis.ModelDetailApi.as_view(), name="api-model"),
    path("models/<slug:name>/versions/<int:version>", apis.VersionDetailApi.as_view(), name="api-version"),
    re_path(r"^models/(?P<name>[-\w]+)/versions/(?P<version>\d+)/(?P<action>submit|approve|reject|retire)$",
            apis.VersionTransitionApi.as_view(), name="api-version-transition"),
    path("models/<slug:name>/aliases/<slug:alias>", apis.AliasMoveApi.as_view(), name="api-alias"),
    re_path(r"^models/(?P<name>[-\w]+(@[-\w]+)?)/predict$", apis.PredictApi.as_view(), name="api-predict"),
    re_path(r"^models/(?P<name>[-\w]+(@[-\w]+)?)/jobs$", apis.JobListCreateApi.as_view(), name="api-jobs"),
    path("predictions/<int:pk>", apis.PredictionDetailApi.as_view(), name="api-prediction"),
    path("predictions/<int:pk>/explain", apis.ExplainApi.as_view(), name="api-explain"),
    path("explanations/<int:pk>", apis.ExplanationDetailApi.as_view(), name="api-explanation"),
    path("models/<slug:name>/versions/<int:version>/global-explanations", apis.GlobalExplanationListCreateApi.as_view(),
         name="api-global-explanations"),
    path("global-explanations/<int:pk>", apis.GlobalExplanationDetailApi.as_view(), name="api-global-explanation"),
    path("training-datasets", apis.TrainingDatasetListCreateApi.as_view(), name="api-training-datasets"),
    path("training-datasets/<int:pk>", apis.TrainingDatasetDetailApi.as_view(), name="api-training-dataset"),
    path("fine-tunes", apis.FineTuneListCreateApi.as_view(), name="api-fine-tunes"),
    path("fine-tunes/<int:pk>", apis.FineTuneDetailApi.as_view(), name="api-fine-tune"),
    path("fine-tunes/<int:pk>/cancel", apis.FineTuneCancelApi.as_view(), name="api-fine-tune-cancel"),
    path("jobs/<int:pk>", apis.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:pk>/cancel", apis.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<int:pk>/results", apis.JobResultsApi.as_view(), name="api-job-results"),
]
