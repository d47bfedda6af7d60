"""Load the dev-stack fixtures for these tests.

`pytest_plugins` is only allowed in the rootdir conftest, so the plugin is imported here
instead; `import_plugin` is a no-op if a rootdir conftest already loaded it.
"""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("comuna_devstack.pytest_plugin")
