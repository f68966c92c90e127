"""The embedded demo: synthetic gulls, a classifier trained here, Grad-CAM, a live study.

Each step reuses what an earlier run left, so running the demo twice costs seconds.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from explain_engine.datasets.synthetic_birds import generate_synthetic_birds
from explain_engine.models import Classifier, Image, ImageSet
from explain_engine.services import classifier_train
from explain_engine.tasks import precompute_job_run
from study.models import Study
from study.services import ConditionSpec, study_create, study_launch, study_precompute_job

DEMO_IMAGE_SET = "synthetic-gulls"
DEMO_CLASSIFIER = "demo-classifier"
DEMO_STUDY = "demo"
DEMO_RESEARCHER = "researcher"
DEMO_PER_CLASS = 60
DEMO_IMAGE_SIZE = 224
DEMO_TRIALS_PER_CLASS = 1
DEMO_PRACTICE_TRIALS = 2
DEMO_ATTENTION_CHECKS = 2

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
            "In small details: wing tips, legs and the bill",
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

The species differ in small details: the colour of the wing tips, the colour of the legs,
and whether the bill has a red spot. Look closely before you answer."""


DEBRIEF_TEXT = """**What this study was about.** The species in this demo are synthetic: they differ
only in wing-tip colour, leg colour and a red bill spot. Some participants saw where the AI
looked; we compare how well each group identified the gulls."""

# Declared before launch, frozen by it: two failed attention checks (Prolific's bar for a
# rejection), or answering faster than anyone can look at a gull.
EXCLUSION_RULES = {"max_failed_attention_checks": 1, "min_median_response_ms": 800}


@dataclass(frozen=True)
class DemoSite:
    study: Study
    researcher_username: str
    researcher_password: str


def demo_prepare(*, data_dir: Path, log: Callable[[str], None] = print) -> DemoSite:
    from django.core.management import call_command  # import_cub's parsing is the command's

    birds_dir = data_dir / "synthetic-gulls"
    if not (birds_dir / "images.txt").exists():
        log(f"drawing {DEMO_PER_CLASS} synthetic gulls per species into {birds_dir} …")
        generate_synthetic_birds(
            birds_dir, per_class=DEMO_PER_CLASS, seed=0, image_size=DEMO_IMAGE_SIZE
        )

    if not ImageSet.objects.filter(name=DEMO_IMAGE_SET, images__isnull=False).exists():
        log("importing the image set …")
        call_command("import_cub", str(birds_dir), name=DEMO_IMAGE_SET)
    image_set = ImageSet.objects.get(name=DEMO_IMAGE_SET)

    classifier = Classifier.objects.filter(name=DEMO_CLASSIFIER).first()
    if classifier is None:
        log("training the demo classifier on the CPU (about two minutes) …")
        classifier = classifier_train(
            image_set=image_set,
            name=DEMO_CLASSIFIER,
            seed=0,
            progress=lambda entry: log(
                f"  epoch {entry['epoch']}/{entry['epochs']}: "
                f"train accuracy {entry['accuracy']:.0%}"
            ),
        )
    log(
        f"classifier {classifier.name}: test accuracy {classifier.test_accuracy:.1%} "
        f"(chance {1 / len(classifier.class_order):.1%})"
    )

    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username=DEMO_RESEARCHER)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()

    study = Study.objects.filter(slug=DEMO_STUDY).first()
    if study is None:
        study = _demo_study_create(classifier=classifier, owner=user)
    study.owners.add(user)
    if study.status == Study.Status.DRAFT:
        log("precomputing Grad-CAM, I-GOS and iGOS++ explanations (about two minutes) …")
        precompute_job_run.delay(study_precompute_job(study=study).pk)
        study_launch(study=study)
    return DemoSite(study=study, researcher_username=DEMO_RESEARCHER, researcher_password=password)


def _demo_study_create(*, classifier: Classifier, owner) -> Study:
    chosen: list[Image] = []
    spare: list[Image] = []
    for label in classifier.image_set.classes.all():
        test_images = list(label.images.filter(split=Image.Split.TEST).order_by("source_id"))
        chosen.extend(test_images[:DEMO_TRIALS_PER_CLASS])
        spare.extend(test_images[DEMO_TRIALS_PER_CLASS : DEMO_TRIALS_PER_CLASS + 1])
    practice = spare[:DEMO_PRACTICE_TRIALS]
    attention = spare[DEMO_PRACTICE_TRIALS : DEMO_PRACTICE_TRIALS + DEMO_ATTENTION_CHECKS]
    with transaction.atomic():
        return study_create(
            slug=DEMO_STUDY,
            title="Which gull is it?",
            classifier=classifier,
            platform=Study.Platform.PROLIFIC,
            conditions=[
                ConditionSpec(name="no-explanation"),
                ConditionSpec(name="gradcam", explanation_method="gradcam"),
                ConditionSpec(name="igos", explanation_method="igos"),
                ConditionSpec(name="igospp", explanation_method="igospp"),
            ],
            main_images=chosen,
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
