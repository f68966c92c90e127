"""A researcher plans a draft, runs a study and watches its participants from the dashboard,
in real Chromium, on a desktop and a phone."""

# ruff: noqa: F811 (demo_like is a fixture imported from test_study_file, then requested)
import pytest

from study.flow.simulation import BotBehaviour, participants_simulate
from tests.study.conftest import make_study
from tests.study.test_study_file import EXAMPLE, demo_like  # noqa: F401 (a fixture)

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


def _log_in(page, url):
    page.goto(url)
    page.fill("input[name=username]", "researcher_owner")
    page.fill("input[name=password]", "a-long-test-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_plans_a_draft(
    browser, live_server, classifier, researcher_owner, device, screenshot_dir
):
    study = make_study(
        classifier,
        launch=False,
        owners=[researcher_owner],
        n_items=6,
        n_attention=2,
        exclusion_rules={"max_failed_attention_checks": 1},
    )
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    _log_in(page, f"{live_server.url}/researcher/studies/{study.slug}/")
    with page.expect_navigation():
        page.get_by_role("link", name="Plan: power by simulation").click()
    page.fill("input[name=baseline]", "0.4")
    page.fill("input[name=difference]", "0.3")
    page.fill("input[name=sims]", "10")
    page.fill("input[name=max_n]", "60")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"plan-form-{device}.png", full_page=True)
    with page.expect_navigation(timeout=120_000):
        page.get_by_role("button", name="Simulate").click()
    assert page.get_by_role("heading", name="Participants per condition for 80% power").count()
    assert page.locator("table.stats td", has_text="none vs gradcam").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"plan-{device}.png", full_page=True)
    context.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_pauses_and_changes_a_quota(
    browser, live_server, classifier, researcher_owner, device, screenshot_dir
):
    study = make_study(classifier, owners=[researcher_owner])
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    _log_in(page, f"{live_server.url}/researcher/studies/{study.slug}/")
    lifecycle = page.locator("section.lifecycle")
    lifecycle.locator("input[name=reason]").first.fill("a typo in the instructions")
    with page.expect_navigation():
        lifecycle.get_by_role("button", name="Pause").click()
    assert page.locator("h1 .status").inner_text() == "Paused"
    lifecycle.locator("select[name=condition]").select_option("gradcam")
    lifecycle.locator("input[name=quota]").fill("25")
    with page.expect_navigation():
        lifecycle.get_by_role("button", name="Set quota").click()
    log = page.locator("section", has=page.get_by_role("heading", name="Study log"))
    assert "quota changed of gradcam from default to 25" in log.inner_text()
    assert "paused (live → paused) by researcher_owner: “a typo in the instructions”" in (
        log.inner_text()
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"lifecycle-{device}.png", full_page=True)
    context.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_excludes_a_participant_on_the_monitor(
    browser, live_server, classifier, researcher_owner, device, screenshot_dir
):
    study = make_study(
        classifier,
        owners=[researcher_owner],
        n_attention=1,
        exclusion_rules={"min_median_response_ms": 800},
    )
    # The gradcam bots answer too fast and are excluded, which frees their place: the next
    # bot may go to gradcam again. Simulate until a "none" participant exists.
    for seed in range(20):
        participants_simulate(
            study=study,
            allow_live=True,
            n=4,
            seed=seed,
            behaviour_by_condition={"gradcam": BotBehaviour(accuracy=0.5, mean_response_ms=1)},
            default_behaviour=BotBehaviour(accuracy=0.8, mean_response_ms=5000),
        )
        if study.participants.filter(condition__name="none").exists():
            break
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    _log_in(page, f"{live_server.url}/researcher/studies/{study.slug}/")
    with page.expect_navigation():
        page.get_by_role("link", name="Every participant").click()
    page.select_option("select[name=condition]", "none")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    rows = page.locator("table.monitor tbody tr")
    assert rows.count() >= 1
    first = rows.first
    first.locator("summary").click()
    first.locator("input[name=reason]").first.fill("said they guessed")
    with page.expect_navigation():
        first.get_by_role("button", name="Exclude").click()
    assert "condition=none" in page.url
    assert "excluded by a researcher: said they guessed" in page.content()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"participants-{device}.png", full_page=True)
    context.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_creates_a_study_from_its_file_on_the_web(
    browser, live_server, demo_like, researcher_owner, device, screenshot_dir
):
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    _log_in(page, f"{live_server.url}/researcher/")
    with page.expect_navigation():
        page.get_by_role("link", name="New study").click()
    page.fill("textarea[name=text]", EXAMPLE.read_text().replace("per_class = 2", "per_class = 9"))
    with page.expect_navigation():
        page.get_by_role("button", name="Create the draft").click()
    assert "items.per_class: class" in page.locator(".error").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"study-new-error-{device}.png", full_page=True)
    page.fill("textarea[name=text]", EXAMPLE.read_text())
    with page.expect_navigation():
        page.get_by_role("button", name="Create the draft").click()
    assert page.url.endswith("/researcher/studies/gulls-from-file/")
    assert page.get_by_role("link", name="Edit the study file").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"draft-dashboard-{device}.png", full_page=True)
    context.close()


def _no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_previews_a_condition(
    browser, live_server, classifier, researcher_owner, device, screenshot_dir
):
    study = make_study(classifier, owners=[researcher_owner])
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    _log_in(page, f"{live_server.url}/researcher/studies/{study.slug}/")
    section = page.locator("section.preview-and-precompute")
    section.locator("select[name=condition]").select_option("gradcam")
    if screenshot_dir:
        section.screenshot(path=screenshot_dir / f"dashboard-preview-section-{device}.png")
    with page.expect_navigation():
        section.get_by_role("button", name="Preview as a participant").click()
    banner = page.locator(".preview-banner")
    assert "Preview of condition gradcam" in banner.inner_text()
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"preview-consent-{device}.png", full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="I agree, continue").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    page.wait_for_selector("img.heatmap", timeout=20_000)
    assert "Preview of condition gradcam" in page.locator(".preview-banner").inner_text()
    assert _no_sideways_scroll(page)
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"preview-trial-{device}.png", full_page=True)
    context.close()
    assert study.participants.get().preview


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_researcher_computes_missing_explanations(
    browser, live_server, classifier, researcher_owner, device, screenshot_dir, monkeypatch
):
    """The worker process is replaced by one that plans the job and finds two of its four
    rows done in two minutes (the live server's database is not one a process can open)."""
    from datetime import timedelta

    from django.contrib.auth.models import Permission
    from django.utils import timezone

    from explain_engine.models import Explanation, PrecomputeJob
    from explain_engine.services.precompute import precompute_job_plan
    from study.researcher import precompute

    def half_done(*, job_id, log_path):
        job = PrecomputeJob.objects.get(pk=job_id)
        precompute_job_plan(job=job)
        now = timezone.now()
        first_two = list(job.explanations.order_by("pk").values_list("pk", flat=True)[:2])
        Explanation.objects.filter(pk__in=first_two).update(
            status=Explanation.Status.DONE, started_at=now - timedelta(minutes=2), finished_at=now
        )

    monkeypatch.setattr(precompute, "precompute_worker_start", half_done)
    researcher_owner.user_permissions.add(Permission.objects.get(codename="view_precomputejob"))
    study = make_study(classifier, owners=[researcher_owner], launch=False)
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    _log_in(page, f"{live_server.url}/researcher/studies/{study.slug}/")
    with page.expect_navigation():
        page.get_by_role("button", name="Compute missing explanations").click()
    assert page.locator("td.done").inner_text() == "2/4"
    assert "min left" in page.locator("td.eta").inner_text()
    assert _no_sideways_scroll(page)
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"study-job-{device}.png", full_page=True)
    with page.expect_navigation():
        page.get_by_role("link", name="Job").first.click()
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"job-detail-{device}.png", full_page=True)
    with page.expect_navigation():
        page.get_by_role("link", name="All jobs").click()
    assert page.locator("td.study").first.inner_text() == study.slug
    assert page.locator("td.methods").first.inner_text() == "gradcam"
    assert _no_sideways_scroll(page)
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / f"job-list-{device}.png", full_page=True)
    with page.expect_navigation():
        page.get_by_role("link", name=study.slug).first.click()
    latest = page.locator("section.preview-and-precompute").inner_text()
    assert "Latest precompute: job" in latest
    if screenshot_dir:
        page.screenshot(
            path=screenshot_dir / f"dashboard-after-precompute-{device}.png", full_page=True
        )
    context.close()
