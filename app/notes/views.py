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


@csrf_exempt
def files(request):
    """POST a file (multipart field "file"): saved in the default storage (uploads); its URL."""
    from django.core.files.storage import default_storage

    if request.method != "POST" or "file" not in request.FILES:
        return JsonResponse({"error": "POST a file, as the multipart field file"}, status=400)
    upload = request.FILES["file"]
    name = default_storage.save(f"uploads/{upload.name}", upload)
    return JsonResponse({"name": name, "url": default_storage.url(name), "written_by": socket.gethostname()},
                        status=201)


@csrf_exempt
def session(request):
    """POST who=...: the visitor's session (a cookie signed with SECRET_KEY) says who; GET:
    who it says, and which host read it."""
    if request.method == "POST":
        request.session["who"] = request.POST.get("who", "")[:50]
    return JsonResponse({"who": request.session.get("who"), "read_by": socket.gethostname()})
