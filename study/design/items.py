"""Drawing a study's main items so that no strategy without understanding pays.

Two shortcuts an item set can offer: with each species exactly once (or equally often),
a participant answers the last trials by elimination; with the AI right on every item,
"always the AI's answer" is perfect and the analysis of reliance on the AI has no items
where following it is wrong. `main_items_draw` draws items over the test images (not per
class), so species counts differ, and takes the declared share of them from the
classifier's errors on the test split.

Uneven counts open the opposite shortcut: "always the most frequent species" (and "always
the first species offered") scores the largest count over the number of items. So no class
gets more than `class_cap` items, the fewest that still lets counts differ: with n items
over k classes, ceil(n / k) (n / k + 1 when k divides n). Over 8 species, 12 items (counts
2,2,2,2,1,1,1,1 or with some species absent) hold every strategy of
`study.design.shortcut_audit` within 4.2 points of chance; 8 items cannot (2 of 8 is 12.5
points above it).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from explain_engine.models import Classifier, ClassLabel, Image, Prediction
from explain_engine.services.predictions import predictions_compute
from study.design.spec import StudyConfigError

#: Draws tried for species counts that differ before giving up.
MAX_DRAWS = 100


def class_cap(n_main: int, n_classes: int) -> int:
    """The most main items one class may have: the fewest that lets counts differ."""
    return n_main // n_classes + 1 if n_classes else n_main


@dataclass(frozen=True)
class ItemDraw:
    """The drawn main items and the test images left for practice and attention checks,
    both in a seeded order."""

    main: list[Image]
    rest: list[Image]


def _groups_by_ai_error(
    classifier: Classifier, pool: list[Image], *, n_main: int, ai_wrong_share: float
) -> list[tuple[list[Image], int]]:
    """The images the classifier gets wrong and those it gets right, each with how many of
    the main items to draw from it."""
    failures = predictions_compute(classifier=classifier, images=pool)
    if failures:
        raise StudyConfigError(
            f"{len(failures)} test image(s) could not be read to predict them, e.g. "
            f"{next(iter(failures.values()))}"
        )
    predicted = dict(
        Prediction.objects.filter(classifier=classifier, image__in=pool).values_list(
            "image_id", "predicted_label_id"
        )
    )
    wrong = [image for image in pool if predicted[image.pk] != image.class_label_id]
    right = [image for image in pool if predicted[image.pk] == image.class_label_id]
    n_wrong = round(ai_wrong_share * n_main)
    if len(wrong) < n_wrong or len(right) < n_main - n_wrong:
        raise StudyConfigError(
            f"ai_wrong_share {ai_wrong_share:g} of {n_main} main items needs {n_wrong} "
            f"test images the AI gets wrong and {n_main - n_wrong} it gets right; the "
            f"test split has {len(wrong)} and {len(right)}"
        )
    return [(wrong, n_wrong), (right, n_main - n_wrong)]


def main_items_draw(
    *,
    classifier: Classifier,
    labels: list[ClassLabel],
    n_main: int,
    ai_wrong_share: float | None,
    seed: int,
) -> ItemDraw:
    """`n_main` main items among the test images of `labels`, seeded.

    With `ai_wrong_share`, round(share x n_main) of them are images the classifier gets
    wrong and the others images it gets right (predictions missing for the test images are
    computed first); with None, any. The draw is over images, so species counts vary, no
    class above `class_cap`; it is repeated until not every class appears equally often.
    StudyConfigError names the numbers when the test split cannot give what is asked.
    """
    if n_main < 1:
        raise StudyConfigError(f"a study needs at least one main item; got {n_main}")
    if ai_wrong_share is not None and not 0 <= ai_wrong_share <= 1:
        raise StudyConfigError(f"ai_wrong_share must lie in [0, 1]; got {ai_wrong_share}")
    pool = list(Image.objects.filter(class_label__in=labels, split=Image.Split.TEST).order_by("pk"))
    if len(pool) < n_main:
        raise StudyConfigError(f"{n_main} main items asked for, {len(pool)} test images exist")
    groups = (
        [(pool, n_main)]
        if ai_wrong_share is None
        else _groups_by_ai_error(classifier, pool, n_main=n_main, ai_wrong_share=ai_wrong_share)
    )
    rng = random.Random(seed)
    cap = class_cap(n_main, len(labels))
    for _ in range(MAX_DRAWS):
        main = _capped_draw(rng, groups, cap)
        if main is None:
            continue
        counts = Counter(image.class_label_id for image in main)
        if len(labels) < 2 or len({counts[label.pk] for label in labels}) > 1:
            break
    else:
        raise StudyConfigError(
            f"no draw of {n_main} main items gives the {len(labels)} classes different "
            f"counts with at most {cap} of any class; ask for a number of items that is not "
            "a multiple of the classes, or add test images of the classes short of them"
        )
    rng.shuffle(main)
    chosen = {image.pk for image in main}
    rest = [image for image in pool if image.pk not in chosen]
    rng.shuffle(rest)
    return ItemDraw(main=main, rest=rest)


def _capped_draw(
    rng: random.Random, groups: list[tuple[list[Image], int]], cap: int
) -> list[Image] | None:
    """From each group its number of images, in a random order, skipping images of a class
    that has `cap` already; None if a group runs out."""
    counts: Counter[int] = Counter()
    main: list[Image] = []
    for images, n in groups:
        taken = 0
        for image in rng.sample(images, len(images)):
            if taken == n:
                break
            if counts[image.class_label_id] < cap:
                counts[image.class_label_id] += 1
                main.append(image)
                taken += 1
        if taken < n:
            return None
    return main
