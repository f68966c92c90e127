"""Practice trials come first and are followed by feedback: the right answer and the
explanation; main trials get none."""

import pytest

from study.design.creation import study_create
from study.design.spec import ConditionSpec, StudyConfigError, StudySpec
from study.models import Participant, Response
from tests.study.conftest import make_study
from tests.study.test_participant_flow import QUESTIONNAIRE, enter, post

pytestmark = pytest.mark.django_db


def test_practice_then_feedback_then_main(client, classifier):
    study = make_study(classifier, per_condition=1, n_items=3, n_training=2)
    pages = {}
    for pid in ("a", "b"):
        url = enter(client, study, pid=pid)
        post(client, url, page="consent", consent="yes")
        post(client, url, page="instructions")
        participant = Participant.objects.get(platform_identity__worker_id=pid)
        roles = [study.items.get(pk=pk).role for pk in participant.trial_item_ids]
        assert roles == ["training", "training", "main", "main", "main"]

        for position in range(5):
            page = client.get(url)
            trial = page.context["trial"]
            html = page.content.decode()
            if trial.phase == "training":
                assert f"Practice {trial.phase_position + 1} of 2" in html
            else:
                assert f"Image {trial.phase_position + 1} of 3" in html
            wrong = next(
                c.value for c in trial.choices if c.value != str(trial.item.image.class_label_id)
            )
            post(client, url, page="trials", trial_position=position, answer=wrong, confidence=2)
            participant.refresh_from_db()
            if trial.phase == "training":
                assert participant.page == "feedback"
                feedback = client.get(url).content.decode()
                assert "Not quite" in feedback
                assert trial.item.image.class_label.display_name in feedback
                pages.setdefault(participant.condition.name, feedback)
                # A stale trial form does not skip the feedback or record anything.
                post(
                    client, url, page="trials", trial_position=position, answer=wrong, confidence=2
                )
                post(client, url, page="feedback")
                post(client, url, page="feedback")  # double-click: still one step
            else:
                assert participant.page in ("trials", "questionnaire")
        post(client, url, **QUESTIONNAIRE)
        participant.refresh_from_db()
        assert participant.status == "completed"
        assert Response.objects.filter(participant=participant).count() == 5
        assert list(
            Response.objects.filter(participant=participant)
            .order_by("trial_position")
            .values_list("phase", flat=True)
        ) == ["training", "training", "main", "main", "main"]
    assert "/explanation/" in pages["gradcam"]
    assert "/explanation/" not in pages["none"]


def test_an_image_cannot_be_both_practice_and_main(classifier):
    images = list(classifier.image_set.images.filter(split="test")[:3])
    with pytest.raises(StudyConfigError, match="both a practice and a main"):
        study_create(
            StudySpec(
                slug="x",
                title="x",
                classifier=classifier,
                platform="open",
                conditions=[ConditionSpec(name="none")],
                main_images=images,
                training_images=images[:1],
                participants_per_condition=1,
                consent_text="c",
                instructions_text="i",
            )
        )
