"""Load the dev-stack fixtures for these tests, and give their children a live Ctrl-C.

`pytest_plugins` is only allowed in the rootdir conftest, so the plugin is imported here
instead; `import_plugin` is a no-op if a rootdir conftest already loaded it.

A shell starting pytest in the background (`make test &`, `( … & )`) makes it ignore SIGINT,
and an ignored signal stays ignored across exec: the `comuna-dev` and stack children these
tests send SIGINT to would then never see it. A handler, unlike an ignore, is reset to the
default on exec, so installing Python's own restores what a terminal's Ctrl-C does.
"""

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("comuna_devstack.pytest_plugin")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
