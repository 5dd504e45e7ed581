"""pyinfra's bookkeeping per operation, made cheap; same results.

- In CLI mode pyinfra orders (and names) every operation by the line numbers of the
  deploy file's frames on the call stack, and gets them with `inspect.stack()`, which
  reads source context for every frame: a third of the controller's time in a no-op of
  this deploy on 8 hosts. The same line numbers come straight from the frames, so the
  same order and the same operation hashes.
- Every operation call, and every fact class pyinfra defines, resolves the type hints
  of pyinfra's global arguments (`typing.get_type_hints` on a TypedDict that never
  changes): done once. Installed when the inventory loads, before deploy files import
  pyinfra's operations and facts.
"""

from __future__ import annotations

import sys

import functools

import pyinfra
import pyinfra.api.operation  # noqa: F401  (the module; pyinfra.api.operation is also a function)
from pyinfra.api import arguments as pyinfra_arguments
from pyinfra.api import facts as pyinfra_facts
from pyinfra.api import util as pyinfra_util

OPERATION_MODULE = sys.modules["pyinfra.api.operation"]


def order_from_stack(state) -> list[int]:
    """pyinfra.api.util.get_operation_order_from_stack, frame by frame."""
    frames = []
    frame = sys._getframe(1)  # from the caller out, as inspect.stack() (minus this frame)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    start = 0
    if state.current_deploy_filename:
        for start, frame in enumerate(frames):
            if frame.f_code.co_filename == state.current_deploy_filename:
                break
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    line_numbers += [frame.f_lineno for frame in frames[start:]
                     if not frame.f_code.co_filename.startswith(pyinfra_util.PYINFRA_INSTALL_DIR)]
    return line_numbers


_global_arguments = functools.cache(pyinfra_arguments.all_global_arguments)


def all_global_arguments() -> list[tuple[str, type]]:
    """pyinfra.api.arguments.all_global_arguments, resolved once."""
    return list(_global_arguments())


def install() -> None:
    OPERATION_MODULE.get_operation_order_from_stack = order_from_stack
    pyinfra_arguments.all_global_arguments = all_global_arguments
    pyinfra_facts.all_global_arguments = all_global_arguments
