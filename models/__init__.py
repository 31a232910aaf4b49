"""The engines: ``similarity`` and ``linking`` wings, with what both share beside them (the model
``loader``, the ``batching`` of concurrent calls, lazy ``exports``). No module here imports FastAPI
or reads the environment; everything configurable is passed in."""
