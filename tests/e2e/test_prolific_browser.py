"""A researcher stores a Prolific API token, reconciles Prolific's export and approves and
rejects from the result, in real Chromium on a desktop and a phone, against the local
stand-in of Prolific's API."""

# ruff: noqa: F811 (fixtures imported from test_prolific_api, then requested)
import pytest

from study.models import StudyEvent
from tests.study.test_prolific_api import (  # noqa: F401 (fixtures)
    HEADER,
    REJECTION,
    ROWS,
    TOKEN,
    prolific,
    reconciled_study,
)

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_approves_and_rejects_on_prolific_from_the_reconciliation(
    browser, live_server, prolific, reconciled_study, device, screenshot_dir, tmp_path
):
    study = reconciled_study
    study.show_accuracy = True
    study.save(update_fields=["show_accuracy"])
    export = tmp_path / "prolific_export.csv"
    export.write_text(HEADER + ROWS)

    def shot(name):
        if screenshot_dir:
            page.screenshot(path=screenshot_dir / f"{name}-{device}.png", full_page=True)

    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    page.goto(f"{live_server.url}/researcher/prolific-token/")
    page.fill("input[name=username]", "researcher_owner")
    page.fill("input[name=password]", "a-long-test-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    page.fill("input[name=token]", TOKEN)
    with page.expect_navigation():
        page.get_by_role("button", name="Store it").click()
    assert page.get_by_text("Token stored.").count() == 1
    assert TOKEN not in page.content() and "…Zk9w" in page.content()
    assert _fits(page)
    shot("prolific-token")

    page.goto(f"{live_server.url}/researcher/studies/{study.slug}/")
    page.set_input_files("input[name=submissions]", str(export))
    with page.expect_navigation():
        page.get_by_role("button", name="Compare").click()
    assert page.get_by_role("button", name="Approve these 1 on Prolific").count() == 1
    assert _fits(page)
    shot("prolific-reconciliation")

    row = page.locator("ul.reviews > li", has_text="nocode")
    row.locator("summary").click()
    row.locator("select[name=rejection_category]").select_option("NO_CODE")
    row.locator("textarea[name=message]").fill(REJECTION)
    assert _fits(page)
    shot("prolific-reject-form")
    with page.expect_navigation():
        row.get_by_role("button", name="Reject on Prolific").click()
    assert page.get_by_text("Submission of nocode rejected on Prolific.").count() == 1
    assert _fits(page)
    shot("prolific-dashboard-after-reject")

    page.set_input_files("input[name=submissions]", str(export))
    with page.expect_navigation():
        page.get_by_role("button", name="Compare").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Approve these 1 on Prolific").click()
    assert page.get_by_text("Prolific is approving 1 submission(s)").count() == 1
    paths = [request["path"] for request in prolific.requests]
    assert paths == [
        "/api/v1/submissions/sub-nocode/transition/",
        "/api/v1/submissions/bulk-approve/",
    ]
    assert StudyEvent.objects.filter(study=study).count() == 2
    assert _fits(page)
    shot("prolific-dashboard-after-approve")
    context.close()
