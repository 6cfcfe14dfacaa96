"""One frozen settings object, read once from the environment at the edge of the program.

Each setting is declared once, as a field of :class:`Settings` (in :mod:`app.settings.declarations`):
its environment variable, its default as the environment would spell it, the kind of value it
takes (:mod:`app.settings.kinds`: how the text is read and the bounds it is held to) and its
meaning. Everything else is derived from those declarations: :meth:`Settings.from_env`, the field
defaults, ``python -m app --help`` (:func:`help_lines`) and the README's table
(:func:`markdown_table`, checked by a test; ``python -m app.settings`` prints it).

Bad values fail at start with a message naming the variable, the value and the problem; secrets
are held in :class:`~bridges.connection.Secret` and never printed.
"""

from app.settings.declarations import SETTINGS, VARIABLES, Settings, help_lines, markdown_table
from app.settings.kinds import Setting

__all__ = ["SETTINGS", "Setting", "Settings", "VARIABLES", "help_lines", "markdown_table"]
