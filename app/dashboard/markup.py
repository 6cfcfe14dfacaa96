"""The dashboard's markup lives in template files (``templates/``, :class:`string.Template`
syntax: ``$name``, ``${name}``, ``$$`` for a dollar sign); this module fills them in.

Every value is escaped with :func:`html.escape` on its way in, unless it is :class:`Markup`:
HTML this module rendered itself, whose values were escaped then. So escaping is not something a
caller can forget: a student id, a game id or a value from the bucket is text, and only a
rendered template is markup. A template must be given exactly the values it names, so a
misspelt or forgotten one fails at once instead of rendering ``$name``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Final

__all__ = ["Markup", "TEMPLATES_DIR", "join", "render"]

TEMPLATES_DIR: Final = Path(__file__).with_name("templates")


class Markup(str):
    """HTML rendered from a template (its values already escaped): inserted as it is."""

    __slots__ = ()


def _fill(value: object) -> str:
    return value if isinstance(value, Markup) else escape(str(value))


@cache
def _template(name: str) -> tuple[Template, frozenset[str]]:
    # Files end with a newline; the fragments they hold do not (they are put side by side).
    template = Template((TEMPLATES_DIR / name).read_text(encoding="utf-8").removesuffix("\n"))
    if not template.is_valid():
        raise ValueError(f"template {name!r} has a $ that is neither $name, ${{name}} nor $$")
    return template, frozenset(template.get_identifiers())


def render(name: str, **values: object) -> Markup:
    """The template file ``name`` with ``values`` put in, escaped unless :class:`Markup`."""
    template, names = _template(name)
    if values.keys() != names:
        missing, unused = sorted(names - values.keys()), sorted(values.keys() - names)
        raise ValueError(f"template {name!r} names {missing or 'nothing more'}, not {unused or 'nothing else'}")
    return Markup(template.substitute({key: _fill(value) for key, value in values.items()}))


def join(parts: Iterable[object], separator: str = "") -> Markup:
    """``parts`` side by side, each escaped unless :class:`Markup` (``separator`` is text too)."""
    return Markup(escape(separator).join(_fill(part) for part in parts))
