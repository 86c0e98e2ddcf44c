"""Reading TOML from a path or from text (tomllib on Python >= 3.11, tomli before)."""

__all__ = ["load_toml"]

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def load_toml(source):
    """Parse ``source``: a path to a TOML file, or TOML text (anything containing a newline or '=')."""
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and "=" not in source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"TOML file {str(path)!r} does not exist")
        text = path.read_text()
        where = str(path)
    else:
        text = source
        where = "the TOML text"
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{where} is not valid TOML: {error}") from None
