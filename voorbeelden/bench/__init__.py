"""Side benchmarks behind ``voorbeelden bench NAME``: questions about the rig itself, not about strategies.

``overhead`` (what orchestration costs, and paired speedups), ``fidelity`` (does the simulator keep its own
schedule under load), ``faults`` (every fault kind x rate x strategy under a deadline). ``bench ratelimit``
runs :mod:`voorbeelden.experiments.ratelimit`, the experiment notebook 04 shows.
"""
