"""The component model: decode a component's definitions, instantiate it, and
carry values across the Canonical ABI.

``decode`` reads and checks the component-level sections (the core modules
are compiled by the ordinary pipeline), ``types`` holds component types and
their layout, ``canon`` lifts and lowers values, ``instance`` links and runs
an instance.  Users reach it through ``wasmlower.engine.Component``.
"""

from .canon import VariantValue
from .decode import ComponentInfo, decode_component
from .instance import ComponentFunc, ComponentInstance
from .types import Extern, FuncType, InstanceType

__all__ = ["ComponentFunc", "ComponentInfo", "ComponentInstance", "Extern", "FuncType",
           "InstanceType", "VariantValue", "decode_component"]
