"""Kintsugi crack plugin: low-light crack segmentation, few-shot adaptation, crack measurements.

Modules: ``retinex`` (illumination/reflectance), ``model`` (CrackProtoNet), ``infer`` (tiled network
and ridge-filter inference, support prototypes), ``measure`` (length/width/orientation), ``tasks``
(the ``crack.segment`` task), ``train`` (weights), ``evaluate`` (held-out numbers), ``lowlight``,
``denoise`` (learned brightness denoiser for noisy photos; ``train_denoiser`` makes its weights).
"""
