"""Load a Python file that is shipped as a file, not imported as a package module (a role's
script, an image's handler, an Ansible module) into a test."""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_source_file(name: str, path: Path) -> ModuleType:
    """The module NAME executed from PATH (which needs no .py suffix). No bytecode is
    written beside it: a __pycache__ folder in a role's files or an image's build context
    is not part of what ships."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    writes_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module
