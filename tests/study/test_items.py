"""Main items drawn without shortcuts: species counts differ (no answering by elimination),
and the declared share of items is drawn from the classifier's errors on the test split."""

from collections import Counter

import pytest

from explain_engine.models import Image, Prediction
from study.design.items import main_items_draw
from study.design.spec import StudyConfigError

pytestmark = pytest.mark.django_db


@pytest.fixture
def predicted(classifier):
    """Every image of the tiny set in the test split (4 per class), with stored predictions:
    the AI is wrong on the first three, right elsewhere."""
    Image.objects.update(split=Image.Split.TEST)
    labels = list(classifier.image_set.classes.order_by("pk"))
    test = list(Image.objects.filter(split=Image.Split.TEST).order_by("pk"))
    wrong = set(image.pk for image in test[:3])
    for image in test:
        label = image.class_label
        if image.pk in wrong:
            label = next(other for other in labels if other.pk != image.class_label_id)
        Prediction.objects.create(
            classifier=classifier,
            image=image,
            predicted_index=classifier.class_order.index(label.source_name),
            predicted_label=label,
            confidence=0.9,
            top_k=[],
        )
    return classifier, labels, test, wrong


def test_the_declared_share_comes_from_the_ai_errors_and_species_counts_differ(predicted):
    classifier, labels, test, wrong = predicted
    assert len(labels) == 8 and len(test) == 32
    draws = [
        main_items_draw(
            classifier=classifier, labels=labels, n_main=8, ai_wrong_share=0.25, seed=seed
        )
        for seed in range(10)
    ]
    assert [sum(image.pk in wrong for image in draw.main) for draw in draws] == [2] * 10
    for draw in draws:
        counts = Counter(image.class_label_id for image in draw.main)
        assert len({counts[label.pk] for label in labels}) > 1  # never one of each
        assert len({image.pk for image in draw.main}) == 8
        assert not {image.pk for image in draw.main} & {image.pk for image in draw.rest}
        assert len(draw.main) + len(draw.rest) == len(test)
    # Seeded: the same seed, the same items; another seed, others.
    again = main_items_draw(
        classifier=classifier, labels=labels, n_main=8, ai_wrong_share=0.25, seed=3
    )
    assert again.main == draws[3].main and draws[3].main != draws[4].main


def test_a_share_the_test_split_cannot_give_is_refused_with_the_numbers(predicted):
    classifier, labels, test, wrong = predicted
    with pytest.raises(StudyConfigError, match=r"needs 4 test images the AI gets wrong .* has 3"):
        main_items_draw(classifier=classifier, labels=labels, n_main=8, ai_wrong_share=0.5, seed=0)


def test_a_draw_that_would_give_each_species_once_is_drawn_again(classifier):
    # The tiny set's test split holds one photo per species; one species gets a second.
    labels = list(classifier.image_set.classes.order_by("pk"))
    test = list(Image.objects.filter(split=Image.Split.TEST))
    assert sorted(Counter(image.class_label_id for image in test).values()) == [1] * 8
    with pytest.raises(StudyConfigError, match="different counts"):
        main_items_draw(classifier=classifier, labels=labels, n_main=8, ai_wrong_share=None, seed=0)
    extra = Image.objects.filter(split=Image.Split.TRAIN).order_by("pk").first()
    extra.split = Image.Split.TEST
    extra.save()
    # Of the 9 ways to leave one photo out, 2 give each species once.
    for seed in range(20):
        draw = main_items_draw(
            classifier=classifier, labels=labels, n_main=8, ai_wrong_share=None, seed=seed
        )
        counts = Counter(image.class_label_id for image in draw.main)
        assert sorted(counts.values()) == [1] * 6 + [2], seed
