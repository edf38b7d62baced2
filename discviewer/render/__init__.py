"""VTK rendering pipelines (offscreen capture, slice and volume rendering). No Qt widgets here.

Empty in the foundation release: the review workstation (issue 3) adds its pipelines.
"""
