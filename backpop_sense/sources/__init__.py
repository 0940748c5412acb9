"""Where blocks come from: a recorded session, a BLE strap, or the simulator.

Every source is an iterable of blocks (:mod:`backpop_sense.blocks`) in time order; the
pipeline never knows which one feeds it.
"""
