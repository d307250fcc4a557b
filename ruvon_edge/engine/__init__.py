"""Orchestration: the façade, the runner of one instance, step handlers, merging, saga.

It imports only the provider interfaces; defaults are chosen in ``ruvon_edge.compose``.
"""
