"""``python -m chatobs.config``: print docs/configuration.md, generated from the settings."""

from .docs import render_markdown

print(render_markdown(), end="")
