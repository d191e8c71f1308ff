"""``python -m conv2d_bundle.cli ...``: the same as the ``conv2d`` command."""

from conv2d_bundle.cli import main

main()
