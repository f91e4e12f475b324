"""Jobs: training work that runs wherever there is room, above ``train/`` and below ``select/``.

``trial`` is one fine-tuning or pretraining as plain data (a spec a worker process or a Ray task
can run in a private store) and what comes back for the driver to register; ``zoo`` builds a model
zoo from such pretrainings. ``select/`` hands its candidates' trainings to these jobs, and
``train/`` knows nothing of either, so the layers point one way: select -> jobs -> train.
"""
