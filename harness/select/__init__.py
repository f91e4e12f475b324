"""Model selection: candidates, prescreens, the protocol runner and leaderboards.

The Python API's entry point is :func:`harness.select_models` (:func:`harness.api.select`), not this
package: ``harness.select`` is the subpackage.
"""
