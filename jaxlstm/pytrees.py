"""Public path of ``jaxlstm.core.pytrees`` (the parameter and state pytrees)."""

from .core.pytrees import *  # noqa: F403
