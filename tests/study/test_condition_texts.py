"""Texts per condition: the instructions say how to read the condition's figure, the
questionnaire asks about that figure, and attention checks ask no confidence."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from explain_engine.methods import REGISTRY
from study.design.condition_texts import CONCEPTS, HEATMAP, METHOD_TEXTS, SAG
from study.design.creation import study_create
from study.design.spec import ConditionSpec, StudySpec
from study.models import Participant, Response, Study, StudyItem
from tests.study.conftest import make_study
from tests.study.test_participant_flow import enter, post

pytestmark = pytest.mark.django_db

FAST_XNN = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "batch_size": 8}


def test_every_engine_method_has_its_texts():
    assert set(METHOD_TEXTS) == set(REGISTRY)


def _pages(client, study, pids):
    """Instructions and questionnaire page of one participant per condition."""
    pages = {}
    for pid in pids:
        url = enter(client, study, pid=pid)
        post(client, url, page="consent", consent="yes")
        participant = Participant.objects.get(platform_identity__worker_id=pid)
        instructions = client.get(url).content.decode()
        # Straight to the questionnaire: its wording is what is checked here.
        Participant.objects.filter(pk=participant.pk).update(page="questionnaire")
        questionnaire = client.get(url).content.decode()
        pages[participant.condition.name] = (instructions, questionnaire)
    return pages


def test_sag_and_xnn_conditions_are_told_how_to_read_their_figure(client, classifier):
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    study = study_create(
        StudySpec(
            slug="graphs",
            title="Which gull?",
            classifier=classifier,
            platform=Study.Platform.PROLIFIC,
            conditions=[
                ConditionSpec(name="sag", explanation_method="sag"),
                ConditionSpec(name="xnn", explanation_method="xnn", explanation_params=FAST_XNN),
            ],
            main_images=images[:2],
            participants_per_condition=1,
            consent_text="Consent",
            instructions_text="Pick the species.",
        )
    )
    # Open without the precompute: these pages show no explanation.
    Study.objects.filter(pk=study.pk).update(status=Study.Status.LIVE)
    pages = _pages(client, study, ["p-1", "p-2"])
    assert set(pages) == {"sag", "xnn"}
    for name, texts in (("sag", SAG), ("xnn", CONCEPTS)):
        instructions, questionnaire = pages[name]
        assert escape(texts.reading_guide) in instructions
        assert escape(texts.helpfulness_question) in questionnaire
        for page in (instructions, questionnaire):
            assert "where the AI looked" not in page and "heatmap" not in page.lower()


def test_heatmap_and_no_explanation_conditions(client, study):
    pages = _pages(client, study, ["p-1", "p-2"])
    heatmap_instructions, heatmap_questionnaire = pages["gradcam"]
    assert escape(HEATMAP.reading_guide) in heatmap_instructions
    assert escape(HEATMAP.helpfulness_question) in heatmap_questionnaire
    plain_instructions, plain_questionnaire = pages["none"]
    assert "How to read the AI" not in plain_instructions
    assert "explanation_helpfulness" not in plain_questionnaire
    assert "where the AI looked" not in plain_instructions + plain_questionnaire


def test_attention_checks_ask_no_confidence(client, classifier):
    study = make_study(classifier, n_items=1, n_attention=1)
    url = enter(client, study, pid="attentive")
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    participant = Participant.objects.get()
    answered = {}
    for _ in participant.trial_item_ids:
        page = client.get(url)
        trial = page.context["trial"]
        html = page.content.decode()
        form = {
            "page": "trials",
            "trial_position": trial.position,
            "answer": trial.choices[0].value,
        }
        if trial.item.role == StudyItem.Role.ATTENTION:
            assert 'name="confidence"' not in html and "How confident" not in html
            refused = client.post(url, {**form, "confidence": 4})
            assert refused.status_code == 400
            assert "an attention check asks no confidence" in refused.content.decode()
            assert client.post(url, form).status_code == 302
        else:
            assert 'name="confidence"' in html
            assert client.post(url, form).status_code == 400  # a main trial asks it
            assert client.post(url, {**form, "confidence": 4}).status_code == 302
        answered[trial.item.role] = True
    assert answered == {StudyItem.Role.MAIN: True, StudyItem.Role.ATTENTION: True}
    confidences = dict(Response.objects.values_list("phase", "confidence"))
    assert confidences == {"main": 4, "attention": None}
    assert reverse("study:participant", args=[study.slug, participant.code]) == url
