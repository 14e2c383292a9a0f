"""The one way HTML is made: Jinja2 templates shipped as package data (``voorbeelden/report/templates``).

Autoescaping is on for every template, so a term, an error message or a parameter value can never inject
markup into a report; ``StrictUndefined`` turns a misspelt name into an error instead of an empty cell.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("voorbeelden.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)
