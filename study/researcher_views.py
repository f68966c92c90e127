"""Researcher pages: staff only."""

import csv

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from study import selectors
from study.models import Study


@staff_member_required(login_url="researcher-login")
def study_list(request: HttpRequest) -> HttpResponse:
    studies = [
        {
            "study": study,
            "progress": selectors.study_progress(study=study),
            "entry_url": _entry_url_for_platform(request, study),
        }
        for study in Study.objects.select_related("classifier").order_by("-created_at")
    ]
    return render(request, "researcher/study_list.html", {"studies": studies})


# What the researcher pastes into Prolific: Prolific fills in the placeholders per participant.
PROLIFIC_URL_PARAMETERS = (
    "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)


def _entry_url_for_platform(request: HttpRequest, study: Study) -> str:
    url = request.build_absolute_uri(reverse("study:entry", args=[study.slug]))
    if study.platform == Study.Platform.PROLIFIC:
        url += PROLIFIC_URL_PARAMETERS
    return url


class _Echo:
    def write(self, value: str) -> str:
        return value


@staff_member_required(login_url="researcher-login")
def study_export_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    study = get_object_or_404(Study, slug=slug)
    writer = csv.DictWriter(_Echo(), fieldnames=selectors.EXPORT_COLUMNS)
    rows = selectors.study_export_rows(study=study)
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _with_header(rows)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
    return response


def _with_header(rows):
    yield dict(zip(selectors.EXPORT_COLUMNS, selectors.EXPORT_COLUMNS, strict=True))
    yield from rows
