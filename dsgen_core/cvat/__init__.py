"""The round-trip with CVAT (seed 001): push a selection as new tasks, pull the annotators' work back.

Through the official ``cvat-sdk`` client; the registry records each push (an export job, its
tasks, their frames and objects) so a pull lands every frame and object on the row it came from.
"""
