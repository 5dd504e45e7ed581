"""pyinfra's bookkeeping per operation, made cheap; same results.

- In CLI mode pyinfra orders (and names) every operation by the line numbers of the
  deploy file's frames on the call stack, and gets them with `inspect.stack()`, which
  reads source context for every frame: a third of the controller's time in a no-op of
  this deploy on 8 hosts. The same line numbers come straight from the frames, so the
  same order and the same operation hashes.
- Every operation call, and every fact class pyinfra defines, resolves the type hints
  of pyinfra's global arguments (`typing.get_type_hints` on a TypedDict that never
  changes): done once.
- Every operation call looks each of the ~35 global arguments up in the host's data,
  layer by layer (an exception per layer that lacks it): the layers are merged once per
  call instead, with the same precedence.

Installed when the inventory loads, before deploy files import pyinfra's operations and
facts.
"""

from __future__ import annotations

import functools
import sys
from copy import copy

import pyinfra
import pyinfra.api.operation  # noqa: F401  (the module; pyinfra.api.operation is also a function)
from pyinfra.api import arguments as pyinfra_arguments
from pyinfra.api import facts as pyinfra_facts
from pyinfra.api import util as pyinfra_util
from pyinfra.api.exceptions import ArgumentTypeError
from pyinfra.context import ctx_config

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


def pop_global_arguments(state, host, kwargs):
    """pyinfra.api.arguments.pop_global_arguments, the host's data merged once per call."""
    config = ctx_config.get() if ctx_config.isset() else state.config
    meta_kwargs = host.current_deploy_kwargs or {}
    data = host.data.dict()  # the layers merged, the first overriding the rest (as getattr)
    arguments, found_keys = {}, []
    for key, type_ in all_global_arguments():
        argument_meta = pyinfra_arguments.all_argument_meta[key]
        default = copy(data[key]) if key in data else argument_meta.default(config)
        if key in kwargs:
            found_keys.append(key)
            value = kwargs.pop(key)
        else:
            value = meta_kwargs.get(key, default)
        if argument_meta.handler:
            value = argument_meta.handler(config, value)
        if value != default:
            pyinfra_util.raise_if_bad_type(value, type_, ArgumentTypeError, f"Invalid argument `{key}`:")
        arguments[key] = value
    return arguments, found_keys


def install() -> None:
    OPERATION_MODULE.get_operation_order_from_stack = order_from_stack
    OPERATION_MODULE.pop_global_arguments = pop_global_arguments
    pyinfra_arguments.all_global_arguments = all_global_arguments
    pyinfra_facts.all_global_arguments = all_global_arguments
