"""The small order service Acme Copilot's `lookup_order` tool calls (`agents/demo.py`): served by this server itself
under `/demo/` when it runs for development (`rundemo`), so the agentic demo needs nothing else. Invented data,
derived from the order id."""
import re
import zlib

from django.http import JsonResponse

ORDER_ID = re.compile(r"[A-Z]-[0-9]{4}")
_STATUSES = [("shipped", "DHL", "2 days"), ("processing", None, "5 days"), ("delivered", "UPS", None),
             ("delayed", "DHL", "7 days")]


def demo_order(request, order_id: str) -> JsonResponse:
    if request.method != "GET":
        return JsonResponse({"error": "Only GET.", "code": "METHOD_NOT_ALLOWED"}, status=405)
    if not ORDER_ID.fullmatch(order_id):
        return JsonResponse({"error": "Order ids look like A-1001.", "code": "BAD_REQUEST"}, status=400)
    if order_id.endswith("0000"):
        return JsonResponse({"error": f"No order {order_id}.", "code": "NOT_FOUND"}, status=404)
    status, carrier, eta = _STATUSES[zlib.crc32(order_id.encode()) % len(_STATUSES)]
    return JsonResponse({"orderId": order_id, "status": status, "carrier": carrier, "eta": eta,
                         "items": [{"sku": "ANVIL-1", "name": "Acme anvil", "quantity": 1}]})
