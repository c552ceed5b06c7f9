"""Public path of ``jaxlstm.core.fast`` (the fast path)."""

from .core.fast import *  # noqa: F403
from .core.fast import __all__ as __all__
