import socket

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from notes.models import Note


@csrf_exempt
def notes(request):
    """POST text=... writes a note; GET lists the last 100."""
    if request.method == "POST":
        text = request.POST.get("text", "")[:200]
        note = Note.objects.create(text=text, written_by=socket.gethostname())
        return JsonResponse({"id": note.id, "written_by": note.written_by}, status=201)
    rows = Note.objects.order_by("-id")[:100]
    return JsonResponse({"read_by": socket.gethostname(),
                         "notes": [{"id": n.id, "text": n.text, "written_by": n.written_by} for n in rows]})
