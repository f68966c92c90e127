"""Researcher-written markdown reaches participants sanitized: no script can run."""

import pytest

from study.texts import markdown_html
from tests.study.conftest import make_study
from tests.study.test_participant_flow import enter

HOSTILE = """**Read this.** A [link](https://example.org) and a [trap](javascript:alert(1)).

<script>alert("consent")</script>
<img src="x" onerror="alert(1)">
<a href="https://example.org" onclick="alert(2)">click</a>
<p style="color: red">styled</p>
"""


def test_markdown_is_rendered_and_script_removed():
    html = markdown_html(HOSTILE)
    assert "<strong>Read this.</strong>" in html
    assert 'href="https://example.org"' in html
    lowered = html.lower()
    for forbidden in ("<script", "onerror", "onclick", "javascript:", "style=", "<img"):
        assert forbidden not in lowered, forbidden
    assert 'rel="noopener noreferrer nofollow"' in html


def test_lists_and_paragraphs_survive():
    html = markdown_html("First line\n\n- one\n- two\n\n1. a\n2. b")
    assert "<p>First line</p>" in html and "<ul>" in html and "<ol>" in html


@pytest.mark.django_db
def test_participant_pages_show_the_sanitized_texts(client, classifier):
    study = make_study(classifier, consent_text=HOSTILE)
    study.debrief_text = "Thanks! <script>alert(3)</script>"
    study.save()
    url = enter(client, study)
    page = client.get(url).content.decode()
    assert "<strong>Read this.</strong>" in page
    assert "alert(" not in page and "onerror" not in page


@pytest.mark.django_db
def test_the_debrief_is_shown_before_returning_to_prolific(client, classifier):
    from study.flow.services import PROLIFIC_COMPLETION_URL
    from study.models import Participant
    from tests.study.test_participant_flow import QUESTIONNAIRE, answer_current_trial, post

    study = make_study(classifier)
    study.debrief_text = "**Debrief**: the species were synthetic."
    study.save()
    url = enter(client, study, pid="debriefed")
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    participant = Participant.objects.get()
    for _ in participant.trial_item_ids:
        answer_current_trial(client, url, participant)
    assert client.post(url, QUESTIONNAIRE)["Location"] == url  # not straight to Prolific
    page = client.get(url).content.decode()
    assert "<strong>Debrief</strong>: the species were synthetic." in page
    assert PROLIFIC_COMPLETION_URL.format(code=study.completion_code) in page
