"""The clinic's own details for its reports: a small TOML file in the user's config folder.

    # ~/.config/mesoinject/clinic.toml (Linux; `platformdirs.user_config_dir("mesoinject")` elsewhere)
    clinic = "Cabinet de mésothérapie"
    address = "12 rue des Lilas, 75006 Paris"
    practitioner = "Dr Claire Martin"
    registration = "RPPS 10001234567"      # optional: the practitioner's registration number
    language = "fr"                          # the report's language: en (default) or fr

Every key is optional; an unknown key or a value that is not text is refused naming the file and
the key (a typo must not silently drop the clinic's name from a signed document).
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import platformdirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

LANGUAGES = ("en", "fr")
KEYS = ("clinic", "address", "practitioner", "registration", "language")


class ClinicConfigError(ValueError):
    """The clinic file cannot be used; the message names the file, the key and what to write."""


@dataclasses.dataclass(frozen=True)
class Clinic:
    clinic: str = ""
    address: str = ""
    practitioner: str = ""
    registration: str = ""
    language: str = "en"
    source: str = ""  # the file it came from ("" if none)


def path() -> pathlib.Path:
    return pathlib.Path(platformdirs.user_config_dir("mesoinject")) / "clinic.toml"


def load(file: pathlib.Path | None = None) -> Clinic:
    """The clinic's details, or the defaults (no name, English) when there is no file."""
    file = file or path()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Clinic()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ClinicConfigError(f"{file}: cannot be read as UTF-8 TOML ({e}); fix or remove it") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ClinicConfigError(f"{file}: {unknown[0]!r} is not a clinic setting; the settings are {', '.join(KEYS)}")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ClinicConfigError(f"{file}: {key} must be text in quotes, e.g. {key} = \"...\"")
    language = data.get("language", "en").strip().lower()
    if language not in LANGUAGES:
        raise ClinicConfigError(f"{file}: language {language!r} is not one of {', '.join(LANGUAGES)}")
    return Clinic(**{k: data[k].strip() for k in KEYS if k in data and k != "language"}, language=language,
                  source=str(file))
