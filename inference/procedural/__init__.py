"""Building blocks of the procedural head (see :mod:`inference.procedural_head`).

``surface`` sculpts the skin and eyeball meshes, ``bases`` builds the identity and expression
blend shapes, ``rigging`` the skinning weights, joint regressor and region masks. All of it is
deterministic numpy in millimetres, in FLAME's frame (``y`` up, ``z`` forward, ``x`` to the
head's left).
"""
