"""harness's built-in plugins.

Each module here is an ordinary plugin listed under the ``harness`` entry-point group in our
pyproject, loaded exactly like a third-party package's plugin.
"""
