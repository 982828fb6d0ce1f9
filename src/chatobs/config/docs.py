"""docs/configuration.md, generated from the settings: one table per area."""

from __future__ import annotations

from . import AREAS
from .fields import field_meta

__all__ = ["render_markdown"]


def render_markdown() -> str:
    lines = [
        "# Configuration",
        "",
        "Every setting is read from the environment when `chatobs.init()` runs; `chatobs.init(name=value)` overrides",
        "it (use the *init name*). A bad value makes `init()` raise `chatobs.ConfigError` naming the variable, the value",
        "and what is expected. Secrets are never logged. This page is generated from `chatobs/config/` (one module",
        "per area) by `python -m chatobs.config > docs/configuration.md`, and a test checks it is current.",
        "",
    ]
    for title, area in AREAS:
        lines += [
            "",
            f"## {title}",
            "",
            "| Variable | init name | Default | Example | Meaning |",
            "|---|---|---|---|---|",
        ]
        for name, info in area.model_fields.items():
            extra = field_meta(info)
            env = " / ".join(f"`{n}`" for n in extra["env"])
            default = info.default
            if isinstance(default, list):
                default = ",".join(default) if default else ""
            shown = "" if default is None or default == "" else f"`{default}`"
            example = f"`{extra.get('example')}`" if extra.get("example") else ""
            lines.append(f"| {env} | `{name}` | {shown} | {example} | {extra['doc']} |")
    return "\n".join(lines) + "\n"
