"""A bot walks a Prolific participant's whole study in real Chromium, on a phone and a desktop."""

import pytest

from study.models import Participant, Response
from tests.study.conftest import make_study

PROLIFIC_HOST = "https://app.prolific.com/"
#: The photo's width in every condition, on a phone (390 px) as on a desktop.
PHOTO_WIDTH = 340
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_participant_completes_the_study_in_a_browser(
    browser, live_server, classifier, device, screenshot_dir
):
    study = make_study(classifier, per_condition=1)
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    # The completion redirect leaves the site; answer it here instead of the real Prolific.
    page.route(PROLIFIC_HOST + "**", lambda route: route.fulfill(body="prolific says thanks"))

    def snap(name):
        if screenshot_dir:
            page.screenshot(path=screenshot_dir / f"{device}-{name}.png", full_page=True)

    photo_widths = {}
    for pid in ("bot-none", "bot-gradcam"):
        page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=x")
        page.wait_for_url("**/p/**")  # the entry page's script admits the browser
        participant = Participant.objects.get(platform_identity__worker_id=pid)
        condition = participant.condition.name
        snap(f"{condition}-1-consent")
        # Each click waits for its own page: a navigation still loading when the next click
        # starts another is never "loaded", and the next wait would time out on it.
        with page.expect_navigation():
            page.get_by_role("button", name="I agree, continue").click()
        snap(f"{condition}-2-instructions")
        with page.expect_navigation():
            page.get_by_role("button", name="Start").click()

        for position in range(len(participant.trial_item_ids)):
            submit = page.get_by_role("button", name="Next")
            # The form is marked painted, and Next enabled, only once every stimulus image
            # has loaded and been painted.
            page.wait_for_selector("#trial-form[data-painted=true]")
            assert submit.is_enabled()
            images = page.locator(".stimulus-image")
            expected_images = 2 if condition == "gradcam" else 1
            assert images.count() == expected_images
            for index in range(expected_images):
                assert images.nth(index).evaluate("img => img.complete && img.naturalWidth > 0")
            if position == 0:
                snap(f"{condition}-3-trial")
                photo_widths[condition] = images.first.evaluate(
                    "img => img.getBoundingClientRect().width"
                )
                if condition == "gradcam":
                    page.get_by_role("button", name="Hide the heatmap").click()
                    page.get_by_role("button", name="Show the heatmap").click()
            page.locator("input[name=answer]").first.check()
            page.locator("input[name=confidence][value='4']").check()
            page.wait_for_timeout(50)
            with page.expect_navigation():
                submit.click()

        snap(f"{condition}-4-questionnaire")
        for name, value in [
            ("age_band", "25-34"),
            ("gender", "no answer"),
            ("bird_experience", "none"),
            ("trust_ai", "4"),
        ]:
            page.locator(f"input[name={name}][value='{value}']").check()
        if condition == "gradcam":
            page.locator("input[name=explanation_helpfulness][value='6']").check()
        page.get_by_role("button", name="Finish").click()
        page.wait_for_url(PROLIFIC_HOST + "**")
        assert "cc=C0DE42" in page.url
        participant.refresh_from_db()
        assert participant.status == Participant.Status.COMPLETED
        responses = Response.objects.filter(participant=participant)
        assert responses.count() == len(participant.trial_item_ids)
        width, height = VIEWPORTS[device]["width"], VIEWPORTS[device]["height"]
        first = responses.get(trial_position=0)
        events = [event["event"] for event in first.interactions]
        expected = ["heatmap_hidden", "heatmap_shown"] if condition == "gradcam" else []
        assert events == expected
        for response in responses:
            assert response.client_response_ms is not None and response.client_response_ms >= 50
            assert response.viewport == f"{width}x{height}"
            assert response.confidence == 4
        # Coming back after the redirect shows the completion page with the code.
        page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}")
        page.wait_for_url("**/p/**")
        assert "C0DE42" in page.content()
        snap(f"{condition}-5-complete")
    # The photo is as large with an explanation beside it as without: a condition that
    # shrank it would make the species harder to tell apart there, whatever it explains.
    assert photo_widths["none"] == photo_widths["gradcam"] == PHOTO_WIDTH
    context.close()
