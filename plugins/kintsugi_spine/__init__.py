"""Kintsugi spine plugin: vertebral body height loss, Genant grade and height-loss maps.

Modules, in the order the data flows: levels (label numbering), measure (body isolation, local frame,
column-height maps), reference (pre-fracture reference from neighbours; model.py for the learned
one), grading (Genant, morphology), analyze (all of it, no files), render (PNG, HTML), tasks (the
``spine.height_loss`` task). train.py trains the learned reference on the project's phantoms.
"""
