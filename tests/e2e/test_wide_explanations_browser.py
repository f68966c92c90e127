"""SAG graphs and XNN concept panels in real Chromium, on a phone and on a laptop: the page
lays them out from their parts, so every text is at least 12 CSS px, no picture is shrunk
(a shrunk picture with text in it is what made them unreadable), and the whole figure is
seen by scrolling down only."""

import pytest

from explain_engine.services.concept_models import concept_model_fit
from explain_engine.tasks import precompute_job_run
from study.design.creation import study_create, study_precompute_job
from study.design.launch import study_launch
from study.design.spec import ConditionSpec, StudySpec
from study.models import Participant, Response, Study

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
FAST_XNN = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "train_batch_size": 8}

# Per figure: the smallest font size of any element holding text, the pictures' smallest
# shown/natural width ratio, and whether anything pokes out of the viewport sideways.
MEASURE = """figure => {
  const sizes = [];
  for (const el of figure.querySelectorAll('*')) {
    const text = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (text) sizes.push(parseFloat(getComputedStyle(el).fontSize));
  }
  const ratios = [...figure.querySelectorAll('img')].map(
    img => img.getBoundingClientRect().width / img.naturalWidth);
  const outside = [...figure.querySelectorAll('*')].filter(el => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && (box.left < -0.5 || box.right > window.innerWidth + 0.5);
  }).length;
  return {smallestText: Math.min(...sizes), texts: sizes.length,
          smallestPicture: Math.min(...ratios), pictures: ratios.length, outside};
}"""


@pytest.mark.django_db(transaction=True)
def test_sag_and_xnn_figures_are_legible_on_a_phone_and_a_laptop(
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
    # two epochs fit a weak concept model: kept as `fit_xnn --accept-weak-fit` keeps one
    concept_model_fit(classifier=trained_classifier, accept_weak_fit=True, **FAST_XNN)
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    study_launch(study=study)

    seen = {}
    for pid in ("wide-1", "wide-2"):
        context = browser.new_context(viewport=PHONE)
        page = context.new_page()
        page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=x")
        page.wait_for_url("**/p/**")  # the entry page's script admits the browser
        participant = Participant.objects.get(platform_identity__worker_id=pid)
        method = participant.condition.explanation_method
        # Each click waits for its own page: a navigation still loading when the next click
        # starts another is never "loaded", and the next wait would time out on it.
        with page.expect_navigation():
            page.get_by_role("button", name="I agree, continue").click()
        with page.expect_navigation():
            page.get_by_role("button", name="Start").click()
        page.wait_for_selector("#trial-form[data-painted=true]")

        figure = page.locator(f".{method}-figure")
        for name, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
            page.set_viewport_size(viewport)
            measured = figure.evaluate(MEASURE)
            scrolls_sideways = page.evaluate(
                "document.documentElement.scrollWidth > document.documentElement.clientWidth"
            )
            photo = page.locator(".stimulus-image").first
            # as large as in every other condition (test_participant_browser.PHOTO_WIDTH)
            assert photo.evaluate("img => img.getBoundingClientRect().width") == 340
            seen[(method, name)] = (measured, scrolls_sideways)
            if screenshot_dir:
                page.screenshot(path=screenshot_dir / f"{name}-{method}.png", full_page=True)
        page.set_viewport_size(PHONE)

        page.locator("input[name=answer]").first.check()
        page.locator("input[name=confidence][value='3']").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Next").click()
        assert Response.objects.filter(participant=participant, trial_position=0).exists()
        context.close()

    assert {method for method, _ in seen} == {"sag", "xnn"}
    for (method, name), (measured, scrolls_sideways) in seen.items():
        assert measured["texts"] >= 3 and measured["pictures"] >= 2, (method, name, measured)
        assert measured["smallestText"] >= 12, (method, name, measured)
        assert measured["smallestPicture"] >= 0.9, (method, name, measured)
        assert measured["outside"] == 0 and not scrolls_sideways, (method, name, measured)
