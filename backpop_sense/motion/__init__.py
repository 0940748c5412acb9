"""Spine motion: orientation, lumbar angles, context, range of motion, catches, falls."""
