"""``python -m app.settings``: the README's table of settings, as the declarations make it."""

from app.settings.declarations import markdown_table

print(markdown_table())
