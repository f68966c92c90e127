"""The participant's path through a study, driven with Django's test client."""

import re
from datetime import timedelta

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from study.flow.services import PROLIFIC_COMPLETION_URL
from study.flow.stimulus_tokens import stimulus_url
from study.models import Participant, PlatformIdentity, Response, Study, StudyItem
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

PROLIFIC_QUERY = {"js": "1", "PROLIFIC_PID": "pid-aaa", "STUDY_ID": "st-1", "SESSION_ID": "se-1"}


def enter(client, study, pid="pid-aaa"):
    response = client.get(
        reverse("study:entry", args=[study.slug]), {**PROLIFIC_QUERY, "PROLIFIC_PID": pid}
    )
    assert response.status_code == 302
    return response["Location"]


def post(client, url, **data):
    return client.post(url, data)


QUESTIONNAIRE = {
    "page": "questionnaire",
    "age_band": "25-34",
    "gender": "no answer",
    "bird_experience": "some",
    "trust_ai": "5",
    "explanation_helpfulness": "6",
    "comments": "Nice birds.",
}


def answer_current_trial(
    client, url, participant, *, correct=True, confidence=4, attention_correct=True
):
    """Answer the trial on screen: a main or practice trial with the true species (or not,
    `correct`), an attention check with the answer its prompt names (or not,
    `attention_correct`), whichever species its image shows."""
    participant.refresh_from_db()
    page = client.get(url)
    assert page.status_code == 200
    # The participant looks at the trial for two seconds before answering, on the server's
    # clock too (the client's 1234 ms is then consistent with it).
    Participant.objects.filter(pk=participant.pk).update(
        trial_shown_at=F("trial_shown_at") - timedelta(seconds=2)
    )
    trial = page.context["trial"]
    if trial.item.role == StudyItem.Role.ATTENTION:
        right = next(c.value for c in trial.choices if f"\u201c{c.text}\u201d" in trial.prompt)
        correct = attention_correct
    else:
        right = str(trial.item.image.class_label_id)
    values = [choice.value for choice in trial.choices]
    answer = right if correct else next(v for v in values if v != right)
    form = {
        "page": "trials",
        "trial_position": trial.position,
        "answer": answer,
        "client_response_ms": 1234,
        "viewport": "390x844",
    }
    if trial.item.role != StudyItem.Role.ATTENTION:  # an attention check asks no confidence
        form["confidence"] = confidence
    return client.post(url, form)


def test_prolific_participant_walks_the_whole_flow(client, study):
    url = enter(client, study)
    participant = Participant.objects.get()
    identity = PlatformIdentity.objects.get(participant=participant)
    assert identity.worker_id == "pid-aaa" and identity.session_id == "se-1"
    assert participant.platform_pseudonym and "pid-aaa" not in participant.platform_pseudonym

    assert "Consent text v1" in client.get(url).content.decode()
    assert post(client, url, page="consent", consent="yes").status_code == 302
    assert "Pick the species." in client.get(url).content.decode()
    post(client, url, page="instructions")

    n_items = len(participant.trial_item_ids)
    for position in range(n_items):
        result = answer_current_trial(client, url, participant, correct=position % 2 == 0)
    assert result["Location"] == url  # the questionnaire comes before the code
    participant.refresh_from_db()
    assert participant.status == Participant.Status.ACTIVE

    questionnaire = client.get(url).content.decode()
    shows_explanation = participant.condition.explanation_method == "gradcam"
    assert ("where the AI looked" in questionnaire) == shows_explanation
    incomplete = client.post(url, {**QUESTIONNAIRE, "trust_ai": ""})
    assert incomplete.status_code == 400 and "This field is required" in incomplete.content.decode()
    finished = client.post(url, QUESTIONNAIRE)
    assert finished["Location"] == PROLIFIC_COMPLETION_URL.format(code="C0DE42")

    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    assert participant.questionnaire["trust_ai"] == "5"
    assert ("explanation_helpfulness" in participant.questionnaire) == shows_explanation
    responses = list(Response.objects.filter(participant=participant).order_by("trial_position"))
    assert [r.trial_position for r in responses] == list(range(n_items))
    assert [r.is_correct for r in responses] == [p % 2 == 0 for p in range(n_items)]
    assert all(r.confidence == 4 and r.client_response_ms == 1234 for r in responses)
    assert all(r.server_received_at >= r.server_shown_at for r in responses)
    assert all((r.explanation_shown is not None) == shows_explanation for r in responses)
    # After completion the page keeps showing the code and the way back to Prolific.
    assert "C0DE42" in client.get(url).content.decode()


def test_explanation_condition_shows_heatmap_and_none_condition_does_not(client, classifier):
    study = make_study(classifier, per_condition=1)
    pages = {}
    for pid in ("p1", "p2"):
        url = enter(client, study, pid=pid)
        post(client, url, page="consent", consent="yes")
        post(client, url, page="instructions")
        participant = Participant.objects.get(platform_identity__worker_id=pid)
        pages[participant.condition.name] = client.get(url).content.decode()
    assert "/explanation/" in pages["gradcam"]
    assert "/explanation/" not in pages["none"]


def test_reload_back_and_double_submit_record_once(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="consent", consent="yes")  # double-click
    post(client, url, page="instructions")
    participant = Participant.objects.get()
    trial = client.get(url).context["trial"]
    form = {
        "page": "trials",
        "trial_position": trial.position,
        "answer": trial.item.image.class_label_id,
        "confidence": 3,
    }
    client.post(url, form)
    client.post(url, form)  # the same form again: a double-click or a Back + resubmit
    assert Response.objects.filter(participant=participant).count() == 1
    participant.refresh_from_db()
    assert participant.trial_position == 1
    # A stale consent form from another tab changes nothing.
    post(client, url, page="consent", consent="no")
    participant.refresh_from_db()
    assert participant.status == Participant.Status.ACTIVE


def test_returning_participant_resumes_and_keeps_condition(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    first = Participant.objects.get()
    again = enter(client, study)
    assert again == url
    assert Participant.objects.count() == 1
    assert Participant.objects.get().condition == first.condition


def test_server_shown_time_survives_reload(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    client.get(url)
    shown = Participant.objects.get().trial_shown_at
    client.get(url)
    assert Participant.objects.get().trial_shown_at == shown


def test_declining_consent_ends_politely_and_frees_the_place(client, classifier):
    study = make_study(classifier, per_condition=1)
    url = enter(client, study, pid="decliner")
    post(client, url, page="consent", consent="no")
    participant = Participant.objects.get()
    assert participant.status == Participant.Status.DECLINED
    assert "return this study on Prolific" in client.get(url).content.decode()
    enter(client, study, pid="second")
    enter(client, study, pid="third")
    taken = Participant.objects.filter(status=Participant.Status.ACTIVE)
    assert sorted(taken.values_list("condition__name", flat=True)) == ["gradcam", "none"]


def test_assignment_is_balanced(client, classifier):
    study = make_study(classifier, per_condition=5)
    for index in range(6):
        enter(client, study, pid=f"worker-{index}")
    counts = [c.participants.count() for c in study.conditions.all()]
    assert counts == [3, 3]


def test_full_study_says_so(client, classifier):
    study = make_study(classifier, per_condition=1)
    enter(client, study, pid="one")
    enter(client, study, pid="two")
    response = client.get(
        reverse("study:entry", args=[study.slug]), {"js": "1", "PROLIFIC_PID": "three"}
    )
    assert response.status_code == 409
    assert "full" in response.content.decode()
    assert Participant.objects.count() == 2


def test_prolific_study_without_pid_is_refused(client, study):
    response = client.get(reverse("study:entry", args=[study.slug]), {"js": "1"})
    assert response.status_code == 400
    assert "Prolific" in response.content.decode()
    assert not Participant.objects.exists()


def test_draft_study_is_closed_to_participants(client, classifier):
    study = make_study(classifier, launch=False)
    response = client.get(reverse("study:entry", args=[study.slug]), PROLIFIC_QUERY)
    assert response.status_code == 403
    assert not Participant.objects.exists()


def test_open_study_resumes_by_session(client, classifier):
    study = make_study(classifier, platform=Study.Platform.OPEN)
    first = client.get(reverse("study:entry", args=[study.slug]), {"js": "1"})["Location"]
    second = client.get(reverse("study:entry", args=[study.slug]), {"js": "1"})["Location"]
    assert first == second
    assert Participant.objects.get().platform_pseudonym == ""


def test_invalid_answers_are_rejected_and_nothing_is_saved(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    trial = client.get(url).context["trial"]
    base = {"page": "trials", "trial_position": trial.position}
    other_set_label = 10**9
    for bad in (
        {"answer": trial.choices[0].value},  # no confidence
        {"answer": trial.choices[0].value, "confidence": 9},
        {"answer": other_set_label, "confidence": 3},
        {"answer": "abc", "confidence": 3},
    ):
        response = client.post(url, {**base, **bad})
        assert response.status_code == 400, bad
    assert not Response.objects.exists()
    assert Participant.objects.get().trial_position == 0


def test_participant_sees_only_their_own_images(client, classifier):
    study = make_study(classifier, n_items=2)
    url = enter(client, study, pid="owner")
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    page = client.get(url).content.decode()
    image_url = re.search(r'src="([^"]+/image/[^"]+)"', page).group(1)
    assert client.get(image_url).status_code == 200
    # A test image of the set that is not one of this study's trials (gallery images come
    # from the train split).
    outside = (
        classifier.image_set.images.filter(split="test")
        .exclude(pk__in=study.items.values_list("image_id", flat=True))
        .first()
    )
    owner = Participant.objects.get()
    forbidden = stimulus_url(
        study_slug=study.slug, code=owner.code, kind="image", public_id=outside.public_id
    )
    assert client.get(forbidden).status_code == 404
    wrong_code = image_url.replace(owner.code, "not-a-participant")
    assert client.get(wrong_code).status_code == 404


def test_no_label_is_revealed_before_the_answer(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    response = client.get(url)
    trial = response.context["trial"]
    html = response.content.decode()
    image = trial.item.image
    assert image.class_label.source_name not in html
    assert image.source_path not in html
    assert image.file.name.split("/")[-1] not in html  # even the opaque stored name stays private
    image_response = client.get(
        stimulus_url(
            study_slug=study.slug,
            code=Participant.objects.get().code,
            kind="image",
            public_id=image.public_id,
        )
    )
    content_disposition = image_response["Content-Disposition"]
    assert "Gull" not in content_disposition and image_response["Content-Type"] == "image/jpeg"


def test_declining_with_a_no_consent_code_returns_to_prolific_with_it(client, classifier):
    study = make_study(classifier)
    Study.objects.filter(pk=study.pk).update(no_consent_code="NOCONSENT")
    url = enter(client, study)
    response = post(client, url, page="consent", consent="no")
    assert response["Location"] == PROLIFIC_COMPLETION_URL.format(code="NOCONSENT")
    assert "cc=NOCONSENT" in client.get(url).content.decode()


def test_time_out_frees_the_place_and_records_nothing_more(client, classifier):
    study = make_study(classifier, per_condition=1)
    late_url = enter(client, study, pid="late")
    post(client, late_url, page="consent", consent="yes")
    post(client, late_url, page="instructions")
    trial = client.get(late_url).context["trial"]
    enter(client, study, pid="other")
    refused = client.get(
        reverse("study:entry", args=[study.slug]), {"js": "1", "PROLIFIC_PID": "third"}
    )
    assert refused.status_code == 409

    started = timezone.now() - timedelta(minutes=study.time_limit_minutes + 1)
    Participant.objects.filter(platform_identity__worker_id="late").update(started_at=started)
    late_answer = {
        "page": "trials",
        "trial_position": trial.position,
        "answer": trial.choices[0].value,
        "confidence": 3,
    }
    client.post(late_url, late_answer)
    assert not Response.objects.exists()
    assert "Time is up" in client.get(late_url).content.decode()
    late = Participant.objects.get(platform_identity__worker_id="late")
    assert late.status == Participant.Status.TIMED_OUT

    third = client.get(
        reverse("study:entry", args=[study.slug]), {"js": "1", "PROLIFIC_PID": "third"}
    )
    assert third.status_code == 302
    assert Participant.objects.get(platform_identity__worker_id="third").condition == late.condition


def test_entry_expires_overdue_participants(client, classifier):
    study = make_study(classifier, per_condition=1)
    enter(client, study, pid="a")
    enter(client, study, pid="b")
    Participant.objects.update(started_at=timezone.now() - timedelta(days=1))
    enter(client, study, pid="c")
    assert Participant.objects.filter(status=Participant.Status.TIMED_OUT).count() == 2


def test_reference_gallery_shows_one_training_example_per_species(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    instructions = client.get(url)
    gallery = instructions.context["gallery"]
    labels = {
        label.source_name: label.display_name for label in study.classifier.image_set.classes.all()
    }
    assert [entry.label_text for entry in gallery] == [
        labels[name] for name in study.classifier.class_order
    ]
    item_images = set(study.items.values_list("image_id", flat=True))
    assert all(e.image.split == "train" and e.image.pk not in item_images for e in gallery)
    code = Participant.objects.get().code
    example = stimulus_url(
        study_slug=study.slug, code=code, kind="image", public_id=gallery[0].image.public_id
    )
    assert client.get(example).status_code == 200
    post(client, url, page="instructions")
    assert "Show an example of each species" in client.get(url).content.decode()


def test_interactions_are_stored_and_bad_ones_refused(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    trial = client.get(url).context["trial"]
    form = {
        "page": "trials",
        "trial_position": trial.position,
        "answer": trial.choices[0].value,
        "confidence": 3,
    }
    for bad in ("{not json", '[{"event": "hacked", "ms": 1}]', '[{"event": "heatmap_hidden"}]'):
        assert client.post(url, {**form, "interactions": bad}).status_code == 400
    assert not Response.objects.exists()
    events = '[{"event":"heatmap_hidden","ms":800},{"event":"heatmap_shown","ms":1500}]'
    client.post(url, {**form, "interactions": events})
    assert Response.objects.get().interactions == [
        {"event": "heatmap_hidden", "ms": 800},
        {"event": "heatmap_shown", "ms": 1500},
    ]


def test_the_next_trial_images_are_prefetched(client, study):
    url = enter(client, study)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    page = client.get(url)
    next_item = page.context["trial"].next_item
    prefetched = stimulus_url(
        study_slug=study.slug,
        code=Participant.objects.get().code,
        kind="image",
        public_id=next_item.image.public_id,
    )
    assert f'rel="prefetch" href="{prefetched}"' in page.content.decode()


def test_someone_from_an_excluded_study_is_turned_away(client, classifier):
    first = make_study(classifier, slug="first")
    second = make_study(classifier, slug="second")
    second.excluded_studies.add(first)
    enter(client, first, pid="veteran")
    refused = client.get(
        reverse("study:entry", args=[second.slug]), {"js": "1", "PROLIFIC_PID": "veteran"}
    )
    assert refused.status_code == 409
    assert "already taken part in a related study" in refused.content.decode()
    assert not Participant.objects.filter(study=second).exists()
    # The exclusion works both ways, and newcomers are welcome in either.
    enter(client, second, pid="newcomer")
    refused_back = client.get(
        reverse("study:entry", args=[first.slug]), {"js": "1", "PROLIFIC_PID": "newcomer"}
    )
    assert refused_back.status_code == 409
