"""The embedded demo: synthetic gulls, a classifier trained here, every explanation method,
a live study, and a comparative study reusing its SAG searches.

Each step reuses what an earlier run left, so running the demo twice costs seconds.
"""

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from explain_engine import training
from explain_engine.datasets.synthetic_birds import generate_synthetic_birds
from explain_engine.ground_truth import format_goals
from explain_engine.models import Classifier, ConceptModel, Image, ImageSet, PrecomputeJob
from explain_engine.selectors import precompute_job_method_progress
from explain_engine.services.classifiers import classifier_train
from explain_engine.services.concept_models import concept_model_fit
from explain_engine.services.ground_truth import precompute_job_ground_truth
from explain_engine.services.precompute import precompute_job_release_claims
from explain_engine.tasks import precompute_job_run
from study.design import demo_classifier
from study.design.creation import study_create, study_precompute_job
from study.design.demo_workers import (
    precompute_job_compute,
    precompute_workers_start,
    single_threaded,
)
from study.design.items import main_items_draw
from study.design.launch import study_launch, study_shortcut_audit
from study.design.preparation import StepPlan, StepProgress, preparation_begin, step_skip
from study.design.question_types import sag_comparison
from study.design.spec import ConditionSpec, StudyConfigError, StudySpec
from study.models import PreparationStep, Study

DEMO_IMAGE_SET = "synthetic-gulls"
DEMO_CLASSIFIER = "demo-classifier"
DEMO_STUDY = "demo"
DEMO_COMPARE_STUDY = "demo-compare"
DEMO_RESEARCHER = "researcher"
DEMO_PER_CLASS = 60
#: Images per worker task: small, so that two workers share the slow methods to the end.
DEMO_BATCH_SIZE = 2
#: Distant, hazy test photos per species: the hard photos the AI-wrong items come from.
DEMO_DISTANT_PER_CLASS = 2
DEMO_IMAGE_SIZE = 224
# 12 main items over 8 species, no species more than twice (`items.class_cap`): "always the
# most frequent species" scores 2 of 12, 4.2 points above chance (12.5%), inside the shortcut
# audit's default 10-point margin; 8 items cannot pass it (2 of 8: +12.5), and each item costs
# every method's precompute. 12 is also the fewest that hold the AI-wrong share exactly.
DEMO_MAIN_ITEMS = 12
# The share of main items the AI gets wrong (drawn from its errors on the test split), so
# that following the AI is not always right and the reliance analysis has both halves.
DEMO_AI_WRONG_SHARE = 0.25
DEMO_PRACTICE_TRIALS = 2
DEMO_ATTENTION_CHECKS = 2
DEMO_COMPARE_MIN_ITEMS = 4
# The XNN's defaults (five concepts, up to five training runs); see README for its timing.
DEMO_XNN: dict = {}

COMPREHENSION_QUESTIONS = [
    {
        "question": "What do you do on each page?",
        "choices": [
            "Say which species the gull is, and how sure I am",
            "Count the gulls in the picture",
            "Describe the background",
        ],
        "answer": 0,
    },
    {
        "question": "Where do the species differ?",
        "choices": [
            "Only in their size",
            "In small details: wing tips, bill, legs and eye ring",
            "In the background they stand on",
        ],
        "answer": 1,
    },
]

CONSENT_TEXT = """This is a demonstration study run by explainstudy.

You will see photographs of gulls and say which species each one is. Some participants
also see where an AI model looked. It takes about five minutes. Your answers are stored
under a pseudonym and used only for research. You may stop at any time by closing the page."""

INSTRUCTIONS_TEXT = """Each page shows one gull. Choose its species, then say how sure you are.
The first two are practice: afterwards you will see the right answer. A few pages are
attention checks that tell you which answer to pick.

The species differ in small details: each can be told by its head, from the marks on its
bill (a red spot, a black ring, both or neither) and the colour of the ring around its eye,
or by its body, from the colour of its wing tips and of its legs. Look closely before you
answer."""


DEBRIEF_TEXT = """**What this study was about.** The species in this demo are synthetic: they differ
only in small field marks: bill and eye ring, or wing tips and legs, either pair enough to
tell them apart. Some participants saw where the AI looked; we compare how well each group
identified the gulls."""

COMPARE_COMPREHENSION_QUESTIONS = [
    {
        "question": "What do you do on each page?",
        "choices": [
            "Name the species of the gull",
            "Say on which of two partial pictures the AI will be more confident",
            "Count the gulls in the picture",
        ],
        "answer": 1,
    },
]

COMPARE_CONSENT_TEXT = """This is a demonstration study run by explainstudy.

You will see parts of photographs of gulls and guess how an AI model reacts to them. Some
participants also see where the AI looked. It takes about five minutes. Your answers are
stored under a pseudonym and used only for research. You may stop at any time by closing the
page."""

COMPARE_INSTRUCTIONS_TEXT = """An AI names the species of gulls in photos. On each page you
see what it answered for one photo, and two pictures, A and B, that each show only some parts
of that photo; the rest is darkened. Choose the picture on which the AI will be more
confident of its answer.

The first two pages are practice: afterwards you will see the right answer. A few pages are
attention checks that tell you which answer to pick."""

COMPARE_DEBRIEF_TEXT = """**What this study was about.** We measured, for every pair of
pictures, how confident the AI was on each. Some participants saw where the AI looked; we
compare how well each group predicted the AI."""

# Declared before launch, frozen by it: two failed attention checks (Prolific's bar for a
# rejection), or answering faster than anyone can look at a gull.
EXCLUSION_RULES = {"max_failed_attention_checks": 1, "min_median_response_ms": 800}


DEMO_METHOD_NAMES = {
    "gradcam": "Grad-CAM",
    "igos": "I-GOS",
    "igospp": "iGOS++",
    "sag": "SAG",
    "xnn": "XNN",
}
# Precompute worker processes beside the web server (0: in this process). One thread each:
# on two cores, two single-threaded workers keep both busy without the thread pools of one
# process fighting a second process for the cores.
DEMO_WORKERS = 2


@dataclass(frozen=True)
class DemoSite:
    study: Study
    compare_study: Study | None


def demo_steps() -> list[StepPlan]:
    """The demo's preparation, in order, as the terminal and the researcher's pages show it."""
    return [
        StepPlan("demo-data", "Drawing and importing the synthetic gulls"),
        StepPlan("demo-training", "Training the classifier", "epochs"),
        StepPlan("demo-concepts", "Fitting the XNN concept model", "epochs"),
        *(
            StepPlan(f"demo-explain-{slug}", f"Explaining the study photos: {name}", "photos")
            for slug, name in DEMO_METHOD_NAMES.items()
        ),
        StepPlan("demo-launch", "Launching the studies"),
    ]


def demo_researcher_reset() -> tuple[str, str]:
    """The demo's researcher account with a fresh password: (username, password)."""
    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username=DEMO_RESEARCHER)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return DEMO_RESEARCHER, password


def xnn_fit_progress(entry: dict) -> tuple[int, int, str]:
    """An XNN fit's progress (`XNN.fit_features`' dicts) as done, total and detail: epochs
    over all its models (one per class in the per-class mode); a retried model starts over."""
    done = (entry["model"] - 1) * entry["steps"] + entry["step"]
    detail = f"model {entry['model']} of {entry['models']}"
    if entry["attempt"] > 1:
        detail += f", attempt {entry['attempt']} of {entry['max_attempts']}"
    return done, entry["models"] * entry["steps"], detail


def demo_birds_dir(data_dir: Path) -> Path:
    return data_dir / "synthetic-gulls"


def demo_image_set_ready() -> bool:
    return ImageSet.objects.filter(name=DEMO_IMAGE_SET, images__isnull=False).exists()


def demo_image_set(*, data_dir: Path) -> ImageSet:
    """The demo's synthetic gulls, drawn into `data_dir` and imported, unless already there."""
    if not demo_image_set_ready():
        birds_dir = demo_birds_dir(data_dir)
        if not (birds_dir / "images.txt").exists():
            generate_synthetic_birds(
                birds_dir,
                per_class=DEMO_PER_CLASS,
                seed=0,
                image_size=DEMO_IMAGE_SIZE,
                distant_per_class=DEMO_DISTANT_PER_CLASS,
            )
        call_command("import_cub", str(birds_dir), name=DEMO_IMAGE_SET, verbosity=0)
    return ImageSet.objects.get(name=DEMO_IMAGE_SET)


def demo_classifier_train(*, image_set: ImageSet, name: str, progress=None) -> Classifier:
    """Train the demo's classifier from scratch (seed 0, `training.DEMO_TRAINING`)."""
    return classifier_train(
        image_set=image_set,
        name=name,
        seed=demo_classifier.SEED,
        mark_reveal=float(training.DEMO_TRAINING["mark_reveal"]),
        progress=progress,
    )


def _demo_classifier_make(
    *, image_set: ImageSet, log: Callable[[str], None], show: Callable[[PreparationStep], None]
) -> Classifier:
    """The shipped checkpoint where its record holds (see study.design.demo_classifier),
    else trained here."""
    mismatch = demo_classifier.shipped_classifier_mismatch(image_set=image_set)
    if not mismatch:
        with StepProgress("demo-training", show=show) as step:
            classifier = demo_classifier.shipped_classifier_register(
                image_set=image_set, name=DEMO_CLASSIFIER
            )
            step.advance(
                step.step.done,
                detail=f"the shipped checkpoint, test accuracy {classifier.test_accuracy:.1%} "
                f"(`{demo_classifier.COMMAND}` retrains it)",
            )
        return classifier
    log(f"Training the classifier: {mismatch}.")
    with StepProgress("demo-training", show=show) as step:
        classifier = demo_classifier_train(
            image_set=image_set,
            name=DEMO_CLASSIFIER,
            progress=lambda entry: step.advance(
                entry["epoch"], entry["epochs"], f"train accuracy {entry['accuracy']:.0%}"
            ),
        )
        step.advance(step.step.done, detail=f"test accuracy {classifier.test_accuracy:.1%}")
    return classifier


def demo_prepare(
    *,
    data_dir: Path,
    log: Callable[[str], None] = print,
    show: Callable[[PreparationStep], None] = lambda step: None,
    workers: int = 0,
    worker_log: Path | None = None,
) -> DemoSite:
    """Set up the demo, each step only if it is not done yet: the synthetic image set, the
    trained classifier, the studies, the concept model, the explanations and the launch.
    Each step's progress is recorded (study.design.preparation) and passed to `show`.

    Longer than 60 lines: the steps in the order the command reports them, each a check and
    a call; split up, the order would be harder to follow."""
    preparation_begin(steps=demo_steps(), studies=[DEMO_STUDY, DEMO_COMPARE_STUDY])
    if demo_image_set_ready():
        step_skip("demo-data", show=show)
        image_set = ImageSet.objects.get(name=DEMO_IMAGE_SET)
    else:
        with StepProgress("demo-data", show=show):
            image_set = demo_image_set(data_dir=data_dir)
    classifier = Classifier.objects.filter(name=DEMO_CLASSIFIER).first()
    if classifier is None:
        classifier = _demo_classifier_make(image_set=image_set, log=log, show=show)
    else:
        step_skip("demo-training", show=show)
    log(
        f"classifier {classifier.name}: test accuracy {classifier.test_accuracy:.1%} "
        f"(chance {1 / len(classifier.class_order):.1%})"
    )

    owner = get_user_model().objects.get(username=DEMO_RESEARCHER)
    study = Study.objects.filter(slug=DEMO_STUDY).first()
    if study is None:
        study = _demo_study_create(classifier=classifier, owner=owner, log=log)
    study.owners.add(owner)
    if study.status == Study.Status.DRAFT:
        job = study_precompute_job(study=study, batch_size=DEMO_BATCH_SIZE)
        _demo_explain(job, show=show, workers=workers, worker_log=worker_log)
        job.refresh_from_db()
        precompute_job_ground_truth(job=job, truth_root=demo_birds_dir(data_dir))
    else:
        for plan in demo_steps()[2:-1]:
            step_skip(plan.key, show=show)
    for concept_model in ConceptModel.objects.filter(classifier=classifier):
        log(
            f"XNN concept model: R² {concept_model.r2:.2f} of the class scores on the test "
            f"split, arg-max agreement {concept_model.argmax_agreement:.0%}"
            + (
                "; weak fit accepted (it fails the success rule or the R² bar)"
                if concept_model.accepted_weak_fit
                else ""
            )
        )
    scored = PrecomputeJob.objects.filter(classifier=classifier).exclude(ground_truth={}).last()
    if scored is not None:
        report = scored.ground_truth
        # scored before the goals were split (stop 26), or before an XNN concept a photo
        # does not hold was left out of its scores (stop 29)
        xnn_scores = [report.get("xnn"), report.get("all_photos", {}).get("xnn")]
        stale_xnn = any(x is not None and "models_present" not in x for x in xnn_scores)
        if "all_photos" not in report or stale_xnn:
            report = precompute_job_ground_truth(job=scored, truth_root=demo_birds_dir(data_dir))
        log(
            f"the explanations against the gulls' field marks (kept with precompute job "
            f"{scored.pk}), on the {report['images_right']} of {report['images']} photos the "
            "AI answers correctly (where it errs, it did not read the marks):"
        )
        for line in format_goals(report["goals"]):
            log(f"  {line}")
        log(f"on all {report['images']} photos:")
        for line in format_goals(report["all_photos"]["goals"]):
            log(f"  {line}")

    compare = Study.objects.filter(slug=DEMO_COMPARE_STUDY).first()
    if study.status != Study.Status.DRAFT and compare and compare.status != Study.Status.DRAFT:
        step_skip("demo-launch", show=show)
        return DemoSite(study=study, compare_study=compare)
    with StepProgress("demo-launch", show=show):
        if study.status == Study.Status.DRAFT:
            _launch(study, log)
        if compare is None:
            compare = _demo_compare_create(demo=study, owner=owner, log=log)
        if compare is not None:
            compare.owners.add(owner)
            if compare.status == Study.Status.DRAFT:
                # The same photos, classifier and parameters as the demo: every row exists.
                precompute_job_run.delay(study_precompute_job(study=compare).pk)
                _launch(compare, log)
    return DemoSite(study=study, compare_study=compare)


def _launch(study: Study, log: Callable[[str], None]) -> None:
    """Launch with the shortcut audit shown; a study that fails it stays a draft, saying why
    (the demo never overrides the audit)."""
    log(f"{study.slug}: " + study_shortcut_audit(study=study).table())
    try:
        study_launch(study=study)
    except StudyConfigError as error:
        log(f"{study.slug} stays a draft: {error}")


class _MethodSteps:
    """One preparation step per method, advanced from the job's rows."""

    def __init__(self, job: PrecomputeJob, show: Callable[[PreparationStep], None]):
        self.job = job
        self.steps = {
            slug: StepProgress(f"demo-explain-{slug}", show=show).start()
            for slug in DEMO_METHOD_NAMES
        }
        self.polled_at = 0.0

    def poll(self) -> None:
        self.polled_at = time.monotonic()
        for progress in precompute_job_method_progress(job=self.job):
            step = self.steps.get(progress.method)
            if step is not None and step.running:
                step.advance(progress.finished, progress.total)
                if progress.total and progress.finished == progress.total:
                    step.finish()

    def poll_now_and_then(self) -> None:
        if time.monotonic() - self.polled_at >= 1:
            self.poll()

    def end(self, error: BaseException | None = None) -> None:
        for step in self.steps.values():
            if step.running and error is not None:
                step.stop(error)
            elif step.running:
                step.finish()


def _demo_explain(
    job: PrecomputeJob,
    *,
    show: Callable[[PreparationStep], None],
    workers: int,
    worker_log: Path | None,
) -> None:
    """Fit the XNN here while `workers` - 1 processes compute the methods that need no fit,
    then compute the rest with `workers` processes in all (or everything here with 0)."""
    steps = _MethodSteps(job, show)
    precompute_job_release_claims(job=job)
    running = precompute_workers_start(
        job, count=max(workers - 1, 0), fit=False, log_path=worker_log
    )
    try:
        with StepProgress("demo-concepts", show=show) as step:

            def fit_progress(entry: dict) -> None:
                step.advance(*xnn_fit_progress(entry))
                steps.poll_now_and_then()

            # The demo keeps its XNN even when it fails the success rule, as `fit_xnn
            # --accept-weak-fit` would: recorded on the concept model, printed below and
            # shown by the launch checks, so that the demo always runs.
            with single_threaded() if running else contextlib.nullcontext():
                concept_model_fit(
                    classifier=job.classifier,
                    accept_weak_fit=True,
                    progress=fit_progress,
                    **DEMO_XNN,
                )
        precompute_job_compute(
            job,
            workers=workers - len(running),
            poll=steps.poll,
            log_path=worker_log,
            running=running,
        )
        steps.poll()
        job.refresh_from_db()
        if job.status == PrecomputeJob.Status.FAILED:
            raise RuntimeError(f"precompute job {job.pk}: {job.error}")
    except BaseException as error:
        for process in running:
            if process.poll() is None:
                process.terminate()
        steps.end(error)
        raise
    steps.end()


def _demo_study_create(*, classifier: Classifier, owner, log: Callable[[str], None]) -> Study:
    """The demo study: main items drawn so that species counts differ and a declared share
    of them the AI gets wrong (`items.main_items_draw`); practice and attention checks from
    the test images left."""
    draw = _demo_main_items_draw(classifier, log)
    practice = draw.rest[:DEMO_PRACTICE_TRIALS]
    attention = draw.rest[DEMO_PRACTICE_TRIALS : DEMO_PRACTICE_TRIALS + DEMO_ATTENTION_CHECKS]
    with transaction.atomic():
        return study_create(
            StudySpec(
                slug=DEMO_STUDY,
                title="Which gull is it?",
                classifier=classifier,
                platform=Study.Platform.PROLIFIC,
                conditions=[
                    ConditionSpec(name="no-explanation"),
                    ConditionSpec(name="gradcam", explanation_method="gradcam"),
                    ConditionSpec(name="igos", explanation_method="igos"),
                    ConditionSpec(name="igospp", explanation_method="igospp"),
                    ConditionSpec(name="sag", explanation_method="sag"),
                    ConditionSpec(
                        name="xnn", explanation_method="xnn", explanation_params=DEMO_XNN
                    ),
                ],
                main_images=draw.main,
                training_images=practice,
                attention_images=attention,
                comprehension_questions=COMPREHENSION_QUESTIONS,
                participants_per_condition=50,
                consent_text=CONSENT_TEXT,
                instructions_text=INSTRUCTIONS_TEXT,
                debrief_text=DEBRIEF_TEXT,
                owners=[owner],
                exclusion_rules=EXCLUSION_RULES,
            )
        )


def _demo_main_items_draw(classifier: Classifier, log: Callable[[str], None]):
    """The declared share of AI-wrong main items, or as many of the AI's errors as the test
    split has (a classifier this accurate may err on only one or two of its test photos),
    said with the numbers."""
    labels = list(classifier.image_set.classes.all())
    declared = round(DEMO_AI_WRONG_SHARE * DEMO_MAIN_ITEMS)
    refusal: StudyConfigError | None = None
    for n_wrong in range(declared, -1, -1):
        try:
            draw = main_items_draw(
                classifier=classifier,
                labels=labels,
                n_main=DEMO_MAIN_ITEMS,
                ai_wrong_share=n_wrong / DEMO_MAIN_ITEMS,
                seed=0,
            )
        except StudyConfigError as error:
            refusal = refusal or error
            continue
        break
    else:
        # An undertrained classifier may not succeed often enough on the test split.
        draw = main_items_draw(
            classifier=classifier,
            labels=labels,
            n_main=DEMO_MAIN_ITEMS,
            ai_wrong_share=None,
            seed=0,
        )
        n_wrong = -1
    if refusal is not None:
        drawn = "any photos" if n_wrong < 0 else f"{n_wrong} AI-wrong item(s)"
        log(f"main items drawn with {drawn}, not the declared {declared}: {refusal}")
    return draw


def _demo_compare_create(*, demo: Study, owner, log: Callable[[str], None]) -> Study | None:
    """The comparative study on the demo's own photos, whose SAG searches are already stored:
    only photos whose search found a pair with a clear confidence gap can be asked about."""
    classifier = demo.classifier
    by_role: dict[str, list[Image]] = {}
    for item in demo.items.select_related("image").order_by("pk"):
        if sag_comparison(classifier=classifier, image=item.image) is not None:
            by_role.setdefault(item.role, []).append(item.image)
    main = by_role.get("main", [])
    if len(main) < DEMO_COMPARE_MIN_ITEMS:
        log(
            f"skipping the comparative study {DEMO_COMPARE_STUDY!r}: only {len(main)} of the "
            f"demo's photos have a SAG pair with a clear confidence gap "
            f"(it needs {DEMO_COMPARE_MIN_ITEMS})"
        )
        return None
    with transaction.atomic():
        return study_create(
            StudySpec(
                slug=DEMO_COMPARE_STUDY,
                title="Where does the AI look?",
                classifier=classifier,
                platform=Study.Platform.PROLIFIC,
                question_type="sag_comparative",
                conditions=[
                    ConditionSpec(name="no-explanation"),
                    ConditionSpec(name="gradcam", explanation_method="gradcam"),
                    ConditionSpec(name="sag", explanation_method="sag"),
                ],
                main_images=main,
                training_images=by_role.get("training", []),
                attention_images=by_role.get("attention", []),
                comprehension_questions=COMPARE_COMPREHENSION_QUESTIONS,
                participants_per_condition=50,
                consent_text=COMPARE_CONSENT_TEXT,
                instructions_text=COMPARE_INSTRUCTIONS_TEXT,
                debrief_text=COMPARE_DEBRIEF_TEXT,
                owners=[owner],
                exclusion_rules=EXCLUSION_RULES,
            )
        )
