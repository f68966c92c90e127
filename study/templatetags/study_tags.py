"""Template filters for study texts and researcher pages."""

from django import template
from django.utils.safestring import SafeString

from study.flow.stimulus_tokens import stimulus_url
from study.texts import markdown_html

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    """Researcher-written markdown as sanitized HTML (see study.texts)."""
    return markdown_html(text)


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


@register.filter
def percent(value: float | None) -> str:
    """A proportion as a percentage with one decimal: 0.4567 -> 45.7%."""
    if value is None:
        return "–"
    return f"{100 * value:.1f}%"


@register.filter
def p_value(value: float) -> str:
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


@register.filter
def signed_points(value: float) -> str:
    """A difference of proportions in percentage points: 0.123 -> +12.3 pp."""
    return f"{100 * value:+.1f} pp"


@register.filter
def accuracy_interval(accuracy) -> str:
    """A study.results.analysis.Accuracy as 'estimate [95% interval] n=responses'."""
    if accuracy is None:
        return "–"
    return (
        f"{percent(accuracy.estimate)} [{percent(accuracy.low)}–{percent(accuracy.high)}] "
        f"n={accuracy.n_responses}"
    )


@register.simple_tag(takes_context=True, name="stimulus_url")
def stimulus_url_tag(context, kind: str, stimulus) -> str:
    """The URL of a photo, explanation or comparison for the participant on this page only
    (see study.flow.stimulus_tokens)."""
    return stimulus_url(
        study_slug=context["study"].slug,
        code=context["participant"].code,
        kind=kind,
        public_id=stimulus.public_id,
    )


@register.simple_tag
def figure_words(condition, prediction=None):
    """The declared words of `condition`'s explanation figure (`study.disclosure`); pass the
    trial's shown AI prediction, if any, for a figure that may name the AI's answer."""
    from study.design.disclosure import condition_figure_captions

    class_name = prediction.predicted_label.display_name if prediction else None
    return condition_figure_captions(condition=condition, class_name=class_name)


@register.simple_tag
def figure_parts(explanation, condition, prediction=None):
    """A SAG or XNN explanation as the parts its page lays out (`study.figures`)."""
    from study.flow.figures import explanation_parts

    class_name = prediction.predicted_label.display_name if prediction else None
    return explanation_parts(explanation=explanation, condition=condition, class_name=class_name)
