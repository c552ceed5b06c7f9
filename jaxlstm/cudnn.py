"""Public path of ``jaxlstm.core.cudnn`` (cuDNN's LSTM)."""

from .core.cudnn import *  # noqa: F403
from .core.cudnn import __all__ as __all__
