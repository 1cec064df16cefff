"""Model cards and the Hub: cards rendered from the package's Jinja templates at every save, and pushing a run.

- ``ModelCardMixin`` (``amber_align.hub.mixin``): put first in a ``Trainer`` subclass's bases; every save writes or
  updates ``README.md`` (and ``amber_align_card.json``), and ``create_model_card`` (called by ``push_to_hub``)
  merges into the existing README instead of replacing it.
- ``write_card`` / ``refresh_card`` / ``render_card`` (``amber_align.hub.card``): the card of a context, merged
  into an existing README; ``refresh_card(folder)`` renders a finished run's card again (e.g. after an evaluation).
- ``push_folder`` (``amber_align.hub.push``): ``amber-align push DIR --repo-id ID``.

Templates: ``amber_align/hub/templates/*.md.j2`` (package data); a rendered example is in ``model_cards/``.
"""

from __future__ import annotations

from amber_align.hub.card import refresh_card, render_card, write_card
from amber_align.hub.mixin import ModelCardMixin, check_no_token_in_args
from amber_align.hub.push import PushResult, push_folder

__all__ = ["ModelCardMixin", "check_no_token_in_args", "refresh_card", "render_card", "write_card", "PushResult",
           "push_folder"]
