"""Public path of ``jaxlstm.core.native`` (the native CPU kernels, an optional C++ extension)."""

from .core.native import *  # noqa: F403
from .core.native import __all__ as __all__
