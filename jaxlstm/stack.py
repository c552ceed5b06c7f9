"""Public path of ``jaxlstm.layers.stack`` (stacked LSTMs)."""

from .layers.stack import *  # noqa: F403
from .layers.stack import __all__ as __all__
