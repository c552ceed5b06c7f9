"""The layers built on the core: bidirectional, stacked and streaming LSTMs, and the Keras-surface
helpers the Flax modules share. They import the core (``jaxlstm.core``) and nothing above it."""
