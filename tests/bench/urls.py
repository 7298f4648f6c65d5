from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from tests.bench.views import baseline_turn, process_id

urlpatterns = [
    path("bench/baseline/<str:user_id>", baseline_turn),
    path("bench/pid", process_id),
    *project_urlpatterns,
]
