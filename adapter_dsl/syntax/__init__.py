"""The syntax layer: config string → syntax tree with source spans (nothing semantic)."""

from .ast import Arg, ConfigText, Method
from .parser import parse_text

__all__ = ["Arg", "ConfigText", "Method", "parse_text"]
