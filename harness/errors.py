"""The core's typed errors: one hierarchy, defined in ``registry.errors`` (so that package stays
independent of ``harness``) and re-exported here. See that module for the exit code of each."""

from registry.errors import *  # noqa: F403  (the same names, one definition)
from registry.errors import __all__ as __all__
