"""The baseline the interact endpoint is measured against: a bare Django view doing the minimum work of a turn —
read the user's conversation row, update it, insert one message row — with no DRF, authentication, rate limit,
lease or engine."""
import json

from django.db.models import F
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from conversations.models import Conversation, Message


@csrf_exempt
@require_POST
def bare_turn(request, user_id: str):
    body = json.loads(request.body)
    conversation = Conversation.objects.only("id", "message_seq").get(
        project_id=request.headers["X-Project-Id"], user_id=user_id, closed_at__isnull=True)
    Conversation.objects.filter(pk=conversation.pk).update(turn=F("turn") + 1, message_seq=F("message_seq") + 1)
    Message.objects.create(conversation=conversation, seq=conversation.message_seq + 1, turn_id="bench",
                           role=Message.Role.USER, action=body.get("action"), content="")
    return JsonResponse([{"type": "text", "payload": {"message": "ok"}}], safe=False)
