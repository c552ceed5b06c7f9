"""Public path of ``jaxlstm.core.activations`` (the activations)."""

from .core.activations import *  # noqa: F403
