"""A photo that fails to load: the participant sees a message and a retry, can still answer,
and the answer is stored flagged."""

import pytest

from study.models import Participant, Response
from tests.study.conftest import make_study

PHONE = {"width": 390, "height": 844}


@pytest.mark.django_db(transaction=True)
def test_a_blocked_photo_shows_a_message_and_a_retry_and_the_answer_is_flagged(
    browser, live_server, classifier, screenshot_dir
):
    study = make_study(classifier, per_condition=1)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=blocked&STUDY_ID=s&SESSION_ID=x")
    page.wait_for_url("**/p/**")
    participant = Participant.objects.get()
    with page.expect_navigation():
        page.get_by_role("button", name="I agree, continue").click()
    blocked = []

    def block_photos(route):
        blocked.append(route.request.url)
        route.abort()

    # Every photo of the trials fails, as on a connection that drops them.
    page.route("**/image/**", block_photos)
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    notice = page.locator(".stimulus-failed").first
    notice.wait_for()
    assert "did not load" in notice.inner_text()
    retry = notice.get_by_role("button", name="Try again")
    # The failure does not leave the participant stuck: Next is enabled.
    page.wait_for_selector("#trial-form[data-painted=true]")
    assert page.get_by_role("button", name="Next").is_enabled()
    tries = len(blocked)
    retry.click()
    page.wait_for_function(
        "() => document.querySelector('.stimulus-image').src.includes('retry=1')"
    )
    page.wait_for_timeout(300)
    assert len(blocked) > tries  # the retry asked for the photo again, and it failed again
    assert page.locator(".stimulus-failed").count() == 1
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "phone-photo-blocked.png", full_page=True)

    page.locator("input[name=answer]").first.check()
    page.locator("input[name=confidence][value='3']").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Next").click()

    # The next photo loads: its answer is not flagged.
    page.unroute("**/image/**")
    page.reload()
    page.wait_for_selector("#trial-form[data-painted=true]")
    assert page.locator(".stimulus-failed").count() == 0
    page.locator("input[name=answer]").first.check()
    page.locator("input[name=confidence][value='3']").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Next").click()

    flags = dict(
        Response.objects.filter(participant=participant).values_list(
            "trial_position", "stimulus_missing"
        )
    )
    assert flags == {0: True, 1: False}
    context.close()


@pytest.mark.django_db(transaction=True)
def test_a_browser_without_javascript_is_asked_for_it_and_takes_no_place(
    browser, live_server, classifier, screenshot_dir
):
    study = make_study(classifier, per_condition=1)
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=noscript&STUDY_ID=s&SESSION_ID=x")
    assert "This study needs JavaScript" in page.content()
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "phone-javascript-off.png", full_page=True)
    assert not Participant.objects.exists()
    context.close()
