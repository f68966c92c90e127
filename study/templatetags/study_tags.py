"""Template filters for study texts and researcher pages."""

from django import template
from django.utils.safestring import SafeString

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
