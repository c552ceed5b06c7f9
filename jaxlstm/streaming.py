"""Public path of ``jaxlstm.layers.streaming`` (streaming over chunks)."""

from .layers.streaming import *  # noqa: F403
from .layers.streaming import __all__ as __all__
