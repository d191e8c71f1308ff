from conv2d_bundle.checks.test_hailo import *  # noqa: F403 - the checks ship in the package
