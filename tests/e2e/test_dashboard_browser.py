"""A researcher logs in and reads the dashboard in real Chromium, on a desktop and a phone."""

import pytest

from study.simulation import BotBehaviour, participants_simulate
from tests.study.conftest import make_study

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_reads_the_dashboard(
    browser, live_server, classifier, researcher_owner, device, screenshot_dir
):
    study = make_study(
        classifier,
        owners=[researcher_owner],
        exclusion_rules={"max_failed_attention_checks": 1, "min_median_response_ms": 800},
    )
    participants_simulate(
        study=study,
        n=5,
        behaviour_by_condition={},
        default_behaviour=BotBehaviour(accuracy=0.7, mean_response_ms=3000),
    )
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    page.goto(f"{live_server.url}/researcher/studies/{study.slug}/")
    page.fill("input[name=username]", "researcher_owner")
    page.fill("input[name=password]", "a-long-test-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.url.endswith(f"/researcher/studies/{study.slug}/")
    assert page.locator("tfoot th").nth(5).inner_text() == "5"  # completed, all conditions
    assert "Accuracy so far is hidden" in page.content()
    # The tables scroll inside their cards; the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"dashboard-{device}.png", full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="Show accuracy so far").click()
    assert page.locator("th", has_text="Accuracy").count() == 1
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"dashboard-{device}-accuracy.png", full_page=True)
    context.close()
