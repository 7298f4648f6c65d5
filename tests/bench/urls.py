from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from tests.bench.views import bare_turn

urlpatterns = [path("bench/bare/<str:user_id>", bare_turn), *project_urlpatterns]
