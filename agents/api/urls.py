"""The agents app's API under /api/: each module owns its paths (`urlpatterns`). The catalogue (templates, generate,
import) comes before the projects so that `/v1/projects/templates` is not read as a project id."""
from django.urls import include, path

from agents.api import knowledge

urlpatterns = [
    path("v1/knowledge-base", knowledge.KnowledgeDocumentListCreateApi.as_view()),
    path("v1/knowledge-base/upload", knowledge.KnowledgeDocumentUploadApi.as_view()),
    path("v1/knowledge-base/search", knowledge.KnowledgeSearchApi.as_view()),
    path("v1/knowledge-base/<str:doc_id>", knowledge.KnowledgeDocumentDetailApi.as_view()),
    path("", include("agents.api.catalog")),
    path("", include("agents.api.projects")),
    path("", include("agents.api.versions")),
    path("", include("agents.api.public")),
]
