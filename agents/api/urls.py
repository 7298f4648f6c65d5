from django.urls import path

from agents.api import knowledge

urlpatterns = [
    path("v1/knowledge-base", knowledge.KnowledgeDocumentListCreateApi.as_view()),
    path("v1/knowledge-base/upload", knowledge.KnowledgeDocumentUploadApi.as_view()),
    path("v1/knowledge-base/search", knowledge.KnowledgeSearchApi.as_view()),
    path("v1/knowledge-base/<str:doc_id>", knowledge.KnowledgeDocumentDetailApi.as_view()),
]
