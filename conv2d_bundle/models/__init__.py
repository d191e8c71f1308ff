"""Model architectures and safe loading of user models.

Importing this package imports torch: it is on the *create* path only, never on the verify path.
"""

from conv2d_bundle.models.conv2d_fsq import FSQ, Conv2dFSQ
from conv2d_bundle.models.loading import ARCHITECTURES, build_model, load_checkpoint, load_model

__all__ = ["ARCHITECTURES", "FSQ", "Conv2dFSQ", "build_model", "load_checkpoint", "load_model"]
