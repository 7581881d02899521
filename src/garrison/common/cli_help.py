"""One fix to Typer's rich help, shared by both command lines (``garrison`` and
``garrison-agent``).

Typer 0.29's rich help prints every option's type, flags included: ``--yes -y <bool>``,
``--help <bool>``, as if a flag took a value.  Its plain help already leaves flags out
(``TyperOption.get_help_record`` skips them); the rich one does not, so flags get the same
treatment here: no type shown for an option that takes no value.
"""

from __future__ import annotations

from typer import _click
from typer.core import TyperOption

_shown_type = TyperOption.display_type_rich


def _no_type_for_flags(self: TyperOption, ctx: _click.Context) -> str | None:
    if self.is_flag or self.count:
        return None
    return _shown_type(self, ctx)


def hide_flag_types() -> None:
    """Idempotent: both command lines call it when they build their app."""
    TyperOption.display_type_rich = _no_type_for_flags  # type: ignore[method-assign]
