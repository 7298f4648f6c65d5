"""The v2 API's files and data frames under /tenants/{tenant}/api/v2/agents/{aid}/conversations/{cid}/ (API.md §7)."""

urlpatterns: list = []
