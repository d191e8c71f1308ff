"""Root conftest: register the bundle plugin for a source checkout.

The ``pytest11`` entry point normally loads it; registering it a second time would make pytest raise
"Plugin already registered under a different name", so this only registers it when it is not loaded
(no installed entry point, or ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``).
"""

from __future__ import annotations

import pytest


def _plugin_loaded(pluginmanager: pytest.PytestPluginManager) -> bool:
    import sys

    module = sys.modules.get("conv2d_bundle.verify.plugin")
    return module is not None and pluginmanager.is_registered(module)


_registered_here = False


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    global _registered_here
    if not _plugin_loaded(pluginmanager):
        import conv2d_bundle.verify.plugin as plugin

        # None when refused (-p no:conv2d_bundle): then no short option names either
        _registered_here = pluginmanager.register(plugin, "conv2d_bundle") is not None


def pytest_addoption(parser: pytest.Parser) -> None:
    """Registered from here, the plugin missed the start-up hook that gives it its short option names
    (``--bundle``, ``--target``, ...): this conftest is where that hook was running."""
    if _registered_here:
        import conv2d_bundle.verify.plugin as plugin

        plugin.add_short_names(parser)
