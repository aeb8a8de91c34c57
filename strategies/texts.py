"""The strategies' own texts in the active language: the one place that picks between a declaration's
Korean texts (``name``, ``description``, ``label``, ``help``) and its English ones (``name_en``, ...).

The library (strategies.library) is pure Python without gettext, so it declares both languages side
by side; a text without English (a user-written strategy) falls back to the Korean one, then the key
or the parameter's name.
"""

from __future__ import annotations

from django.utils.translation import get_language

from strategies.library import all_strategies
from strategies.library.base import Parameter, Strategy


def english() -> bool:
    """True when the active language is not Korean (None, translations off: the site's Korean)."""
    return not (get_language() or "ko").lower().startswith("ko")


def _class(cls_or_key: type[Strategy] | str) -> type[Strategy] | None:
    return all_strategies().get(cls_or_key) if isinstance(cls_or_key, str) else cls_or_key


def strategy_name(cls_or_key: type[Strategy] | str) -> str:
    cls = _class(cls_or_key)
    if cls is None:
        return str(cls_or_key)
    return (english() and cls.name_en) or cls.name or cls.key


def strategy_description(cls_or_key: type[Strategy] | str) -> str:
    cls = _class(cls_or_key)
    if cls is None:
        return ""
    return (english() and cls.description_en) or cls.description


def parameter_label(parameter: Parameter) -> str:
    return (english() and parameter.label_en) or parameter.label or parameter.name


def parameter_help(parameter: Parameter) -> str:
    return (english() and parameter.help_en) or parameter.help
