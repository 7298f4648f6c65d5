"""Admin page URLs for the tests, the object id quoted as the admin's own links quote it. The admin unquotes the id in
the path (`_2F` is `/`, `_3A` is `:`, `_5F` is `_`, …), so a raw id whose random part begins with such a pair
(`proj_2F…`, about one id in 190) reads as another id, "doesn't exist", and the page redirects to /admin/."""
from django.contrib.admin.utils import quote


def admin_url(model: str, pk, view: str = "change", *, app: str = "agents") -> str:
    return f"/admin/{app}/{model}/{quote(str(pk))}/{view}/"
