"""The v2 API's files and data frames under /tenants/{tenant}/api/v2/agents/{aid}/conversations/{cid}/ (API.md §7)."""
from django.urls import path

from files.api import files, frames

PREFIX = "agents/<str:aid>/conversations/<str:cid>/"

urlpatterns = [
    path(f"{PREFIX}files", files.FileListUploadApi.as_view()),
    path(f"{PREFIX}files/download/", files.FileDownloadApi.as_view()),
    path(f"{PREFIX}data-frames", frames.DataFrameListApi.as_view()),
    path(f"{PREFIX}data-frames/<str:name>", frames.DataFrameSliceApi.as_view()),
]
