"""The bundle checks users run: ``pytest --pyargs conv2d_bundle.checks --bundle DIR --target T``.

They ship inside the package so that a device with only ``pip install conv2d-bundle`` can verify a
bundle; ``checks/`` at the repository root points here. One file per target; torch is never imported.
"""
