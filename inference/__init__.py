"""Head models, geometry in torch, the TEMPEH network stages, losses, training and evaluation.

Never imports Qt.
"""
