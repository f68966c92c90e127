"""The site as gunicorn serves it in the load benchmark, plus one bare view.

The bare view inserts one row with one SQL statement and answers "ok", through the same
middleware and database settings as the site: the limit of this stack, against which the
participant flow's throughput is measured.
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


@csrf_exempt
def bare_insert(request):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_insert (at) VALUES (now())")
    return HttpResponse("ok")


urls.urlpatterns.append(path("bench/insert/", bare_insert))
