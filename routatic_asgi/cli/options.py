"""What every verb shares: where the configuration comes from, and how a port is read."""

from __future__ import annotations

import argparse
import os

from routatic_asgi.config import Config, default_config, load_config

__all__ = [
    "CONFIG_HELP",
    "CONFIG_VARIABLE",
    "KEY_VARIABLE",
    "config_path",
    "load",
    "port_number",
    "shown",
]

CONFIG_VARIABLE = "ROUTATIC_CONFIG"
KEY_VARIABLE = "ROUTATIC_KEY"
CONFIG_HELP = f"YAML file (default: ${CONFIG_VARIABLE}, else the embedded default)"


def config_path(args: argparse.Namespace) -> str | None:
    """--config, else ROUTATIC_CONFIG, else None (the embedded default)."""
    return getattr(args, "config", None) or os.environ.get(CONFIG_VARIABLE) or None


def shown(path: str | None) -> str:
    """The file as the banner names it: absolute, so there is no doubt which one runs."""
    return os.path.abspath(path) if path else "<embedded default>"


def load(path: str | None) -> Config:
    return load_config(path) if path else default_config()


def port_number(value: str) -> int:
    """A TCP port for argparse: 0 (any free port) to 65535."""
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port: give a number 0-65535")
    return int(value)
