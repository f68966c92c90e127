"""A researcher logs in and reads the dashboard in real Chromium, on a desktop and a phone."""

import pytest

from study.flow.simulation import BotBehaviour, participants_simulate
from study.researcher.services import study_set_show_accuracy
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
        allow_live=True,
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
    participants_table = page.locator("table").first
    assert participants_table.locator("th", has_text="Accuracy").count() == 1
    assert page.locator(".analysis .plots img").count() == 2  # the analysis shows with it
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"dashboard-{device}-accuracy.png", full_page=True)
    context.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_reads_the_analysis(
    browser, live_server, classifier, researcher_owner, device, screenshot_dir
):
    """Tables and both plots render under the site's content security policy, and the page
    never scrolls sideways."""
    study = make_study(classifier, owners=[researcher_owner], per_condition=6, n_items=5)
    participants_simulate(
        allow_live=True,
        study=study,
        n=12,
        behaviour_by_condition={
            "none": BotBehaviour(accuracy=0.3, mean_response_ms=3000),
            "gradcam": BotBehaviour(accuracy=0.9, mean_response_ms=1500),
        },
        default_behaviour=BotBehaviour(accuracy=0.5, mean_response_ms=2000),
        seed=5,
    )
    study_set_show_accuracy(study=study, show=True)
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    refused = []
    page.on("console", lambda message: "Refused" in message.text and refused.append(message.text))
    page.goto(f"{live_server.url}/researcher/studies/{study.slug}/")
    page.fill("input[name=username]", "researcher_owner")
    page.fill("input[name=password]", "a-long-test-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    plots = page.locator(".analysis .plots img")
    assert plots.count() == 2
    for index in range(2):
        plots.nth(index).scroll_into_view_if_needed()
        # A blocked or broken SVG leaves the image without a natural size.
        assert plots.nth(index).evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.get_by_role("heading", name="Reliance on the AI").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert refused == []
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"analysis-{device}.png", full_page=True)
    context.close()
