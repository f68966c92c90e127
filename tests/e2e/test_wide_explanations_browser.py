"""SAG graphs and XNN concept panels in real Chromium on a phone: the participant opens the
figure at its full size and fits it back, and both clicks are stored on the response."""

import pytest

from explain_engine.tasks import precompute_job_run
from study.design.creation import study_create, study_precompute_job
from study.design.launch import study_launch
from study.design.spec import ConditionSpec, StudySpec
from study.models import Participant, Response, Study

PHONE = {"width": 390, "height": 844}
FAST_XNN = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "batch_size": 8}


@pytest.mark.django_db(transaction=True)
def test_participant_opens_the_sag_and_xnn_figures_at_full_size(
    browser, live_server, trained_classifier, screenshot_dir
):
    images = list(trained_classifier.image_set.images.filter(split="test").order_by("pk"))
    study = study_create(
        StudySpec(
            slug="wide",
            title="Which gull?",
            classifier=trained_classifier,
            platform=Study.Platform.PROLIFIC,
            conditions=[
                ConditionSpec(name="sag", explanation_method="sag"),
                ConditionSpec(name="xnn", explanation_method="xnn", explanation_params=FAST_XNN),
            ],
            main_images=images[:2],
            participants_per_condition=1,
            consent_text="Consent",
            instructions_text="Pick the species.",
            shortcut_margin_points=100,  # a few items: the audit is tested elsewhere
        )
    )
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    study_launch(study=study)

    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    seen = set()
    for pid in ("wide-1", "wide-2"):
        page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=x")
        page.wait_for_url("**/p/**")  # the entry page's script admits the browser
        participant = Participant.objects.get(platform_identity__worker_id=pid)
        method = participant.condition.explanation_method
        seen.add(method)
        # Each click waits for its own page: a navigation still loading when the next click
        # starts another is never "loaded", and the next wait would time out on it.
        with page.expect_navigation():
            page.get_by_role("button", name="I agree, continue").click()
        with page.expect_navigation():
            page.get_by_role("button", name="Start").click()
        page.wait_for_selector("#trial-form[data-painted=true]")

        figure = page.locator("img.explanation-figure")
        frame = page.locator(".wide-explanation .zoom-frame")
        natural = figure.evaluate("img => img.naturalWidth")
        # Fitted, the figure is no wider than the phone; at full size it has its own pixels
        # and the frame scrolls sideways.
        assert figure.bounding_box()["width"] < PHONE["width"] < natural
        page.get_by_role("button", name="Show at full size").click()
        assert figure.bounding_box()["width"] == pytest.approx(natural, abs=1)
        assert frame.evaluate("el => el.scrollWidth > el.clientWidth")
        if screenshot_dir:
            page.screenshot(path=screenshot_dir / f"phone-{method}-zoomed.png", full_page=True)
        page.get_by_role("button", name="Fit to the screen").click()
        assert figure.bounding_box()["width"] < PHONE["width"]

        page.locator("input[name=answer]").first.check()
        page.locator("input[name=confidence][value='3']").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Next").click()
        first = Response.objects.get(participant=participant, trial_position=0)
        events = [event["event"] for event in first.interactions]
        assert events == ["explanation_zoomed", "explanation_unzoomed"]
    assert seen == {"sag", "xnn"}
    context.close()
