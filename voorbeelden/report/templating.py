"""The one way HTML is made: Jinja2 templates shipped as package data (``voorbeelden/report/templates``).

Autoescaping is on for every template, so a term, an error message or a parameter value can never inject
markup into a report; ``StrictUndefined`` turns a misspelt name into an error instead of an empty cell.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


def num(value: Any, fmt: str = "{:.2f}") -> str:
    """``value`` formatted, or an en dash for a figure that is missing (None or NaN): never "nan"."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return "–" if value is None or isinstance(value, int | float) else str(value)
    return fmt.format(value)


def n_of(n: Any, total: Any = None) -> str:
    """Completeness as "n of N" (just "n" without a total; an en dash when unknown)."""
    if n is None:
        return "–"
    return f"{int(n)} of {int(total)}" if total is not None else str(int(n))


def cell(value: Any) -> str:
    """A table cell of unknown type: whole numbers without decimals, others with two, a dash when missing."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if value != value:
            return "–"
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
    return "–" if value is None else str(value)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("voorbeelden.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, n_of=n_of, cell=cell)
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)
