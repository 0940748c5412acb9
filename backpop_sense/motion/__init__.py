"""Spine motion: orientation, lumbar angles, context, range of motion, catches, falls.

``tracker.MotionTracker`` is the pipeline stage; it builds on ``orientation`` (VQF per IMU),
``ticks`` (the 50 Hz grid), ``spine`` (the angle conventions), ``context`` and ``gait`` (the
context labels), ``events`` (catches, falls) and ``rom`` (range of motion). ``evaluate`` scores
motion against truth.
"""
