"""wasmlower: an ahead-of-time WebAssembly compiler framework in Python."""

__version__ = "0.1.0"
