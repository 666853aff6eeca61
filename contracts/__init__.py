"""What pipelines and serving agree on: settings, the data contract, pseudonyms, the model bundle.

Both sides import this package and it imports neither, so a served Bento ships ``contracts/``,
``models/`` and ``serving/`` only, and a change here is a change to both sides at once.
"""
