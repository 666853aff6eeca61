"""A shopper simulator: the synthetic shop's shoppers using the running endpoint.

Tests, demos and benchmarks need traffic whose right answers are known: each synthetic shopper
has a planted category, brand and price band (``ground_truth.json``), so a simulated shopper can
react to what the endpoint shows as the generator's shoppers would, and a model that serves their
tastes earns measurably more clicks and purchases than one that does not. ``behaviour`` is that
reaction (pure, seeded), ``shop`` reads the shoppers and the catalogue from a data directory, and
``driver`` calls ``POST /recommend`` and posts the reactions to ``POST /feedback`` (loopback only,
bounded in time and requests).
"""
