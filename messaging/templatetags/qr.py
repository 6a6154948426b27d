"""`{% qr_svg text %}`: a QR code as inline SVG, drawn server-side (works offline, no JavaScript)."""

import segno
from django import template
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def qr_svg(text: str, scale: int = 5) -> str:
    svg = segno.make(text, error="l").svg_inline(scale=scale, border=2, omitsize=False)
    return mark_safe(svg)  # segno escapes nothing user-controlled into markup: the text is encoded as modules
