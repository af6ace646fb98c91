"""MODNet (official module names and state_dict layout) and the one safe checkpoint loader."""
from .modnet import MODNet  # noqa: F401
