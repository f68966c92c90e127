"""The site as gunicorn serves it in the load benchmark, plus two stand-in views.

Both go through the same middleware and database settings as the site and answer "ok":

- the bare insert inserts one row with one SQL statement: the limit of this stack, against
  which the participant flow's throughput is measured;
- the answer floor does the least any answer must do, in raw SQL: lock the participant's row,
  insert the answer, advance the participant, in one transaction. Its throughput bounds what
  any design of the answer request could reach on this stack.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from config import urls  # noqa: E402

# Created by load_participants.prepare_database.
BENCH_TABLES = """
CREATE TABLE bench_insert (id bigserial PRIMARY KEY, at timestamptz);
CREATE TABLE bench_participant (id bigint PRIMARY KEY, position integer NOT NULL);
CREATE TABLE bench_answer (
    id bigserial PRIMARY KEY,
    participant_id bigint NOT NULL REFERENCES bench_participant (id),
    position integer NOT NULL,
    answer text NOT NULL,
    at timestamptz NOT NULL,
    UNIQUE (participant_id, position)
);
INSERT INTO bench_participant (id, position) SELECT n, 0 FROM generate_series(0, 1023) AS n;
"""


@csrf_exempt
def bare_insert(request):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_insert (at) VALUES (now())")
    return HttpResponse("ok")


@csrf_exempt
def answer_floor(request):
    # The request's transaction (ATOMIC_REQUESTS) holds the lock until the answer is stored.
    participant_id = int(request.GET["participant"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position FROM bench_participant WHERE id = %s FOR UPDATE", [participant_id]
        )
        (position,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO bench_answer (participant_id, position, answer, at) "
            "VALUES (%s, %s, %s, now())",
            [participant_id, position, request.POST.get("answer", "")],
        )
        cursor.execute(
            "UPDATE bench_participant SET position = position + 1 WHERE id = %s",
            [participant_id],
        )
    return HttpResponse("ok")


urls.urlpatterns += [
    path("bench/insert/", bare_insert),
    path("bench/answer-floor/", answer_floor),
]
