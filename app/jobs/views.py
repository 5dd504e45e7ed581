import socket
from collections import Counter

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from jobs.models import JobRun
from jobs.tasks import record


@csrf_exempt
def jobs(request):
    """POST prefix=...&count=N&seconds=S enqueues N jobs (at most 100 of 5 s; keys
    prefix-0..N-1); GET
    ?prefix=... shows their runs: {key: [host, ...]} and the queue's results by status."""
    if request.method == "POST":
        prefix = request.POST.get("prefix", "job")[:50]
        try:  # small and bounded: anyone who reaches the sample site may post here
            count = max(1, min(int(request.POST.get("count", "1")), 100))
            seconds = max(0.0, min(float(request.POST.get("seconds", "0")), 5.0))
        except ValueError:
            return JsonResponse({"error": "count and seconds are numbers"}, status=400)
        keys = [f"{prefix}-{n}" for n in range(count)]
        for key in keys:
            record.enqueue(key, seconds)
        return JsonResponse({"enqueued": keys, "by": socket.gethostname()}, status=201)
    prefix = request.GET.get("prefix", "")
    runs = {}
    for run in JobRun.objects.filter(key__startswith=prefix).order_by("id"):
        runs.setdefault(run.key, []).append({"host": run.host, "release": run.release})
    from django_tasks_db.models import DBTaskResult

    statuses = Counter(DBTaskResult.objects.filter(args_kwargs__args__0__startswith=prefix)
                       .values_list("status", flat=True)) if prefix else Counter()
    return JsonResponse({"runs": runs, "statuses": dict(statuses)})
