"""The strategy library: pure Python/numpy/pandas strategies (no Django).

``get_strategy(key)`` / ``all_strategies()`` / ``create_strategy(key, params)`` come from the
registry, which finds every ``Strategy`` subclass in the modules of this package, including
modules users drop in. See ``strategies.library.base`` for the interface.
"""

from strategies.library.base import EXIT_PARAMETERS, Parameter, ParameterError, Strategy
from strategies.library.registry import (
    RegistryError,
    UnknownStrategyError,
    all_strategies,
    create_strategy,
    get_strategy,
    import_errors,
)

__all__ = [
    "EXIT_PARAMETERS",
    "Parameter",
    "ParameterError",
    "RegistryError",
    "Strategy",
    "UnknownStrategyError",
    "all_strategies",
    "create_strategy",
    "get_strategy",
    "import_errors",
]
