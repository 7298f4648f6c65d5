"""The v2 conversations API's paths under /tenants/{tenant}/api/v2/ (API.md §7)."""

urlpatterns: list = []
