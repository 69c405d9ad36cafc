"""Reading the asset inventory from YAML or CSV (formats in `correlator.assets`); errors name file, line and field."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from correlator.assets import (
    Asset,
    InformationSystem,
    Inventory,
    InventoryError,
    _boolean,
    _FieldError,
)
from correlator.located_yaml import Located, load_located_yaml

__all__ = ["load_inventory", "parse_inventory_csv", "parse_inventory_yaml"]


def load_inventory(path: str | Path) -> Inventory:
    """Read a YAML (``.yml``/``.yaml``) or CSV (``.csv``) inventory. Every call reads the file again."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror or exc}", source=source) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"not UTF-8 (byte {exc.start})", source=source) from None
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix in {".yml", ".yaml"}:
        return parse_inventory_yaml(text, source=source, digest=digest)
    if suffix == ".csv":
        return parse_inventory_csv(text, source=source, digest=digest)
    raise InventoryError(f"unknown inventory format {suffix or '(none)'!r}: use .yml, .yaml or .csv", source=source)


def parse_inventory_yaml(text: str, *, source: str = "<inventory>", digest: str = "") -> Inventory:
    doc = load_located_yaml(text, source, InventoryError)
    if doc is None:
        doc = Located()
        doc.line, doc.key_lines = 1, {}
    if not isinstance(doc, Located):
        raise InventoryError("the inventory must be a mapping with 'systems' and 'assets'", source=source, line=1)
    for key in doc:
        if key not in {"systems", "assets"}:
            raise InventoryError("unknown key (expected systems, assets)", source=source, line=doc.line_of(key),
                                 field=str(key))
    systems = [
        _located(InformationSystem.from_dict, item, source, f"systems[{index}]")
        for index, item in enumerate(_yaml_list(doc, "systems", source))
    ]
    asset_items = _yaml_list(doc, "assets", source)
    assets = [
        _located(Asset.from_dict, item, source, f"assets[{index}]")
        for index, item in enumerate(asset_items)
    ]
    return Inventory.build(systems, assets, source=source, digest=digest,
                           asset_lines=[item.line for item in asset_items])


_CSV_COLUMNS: Final = ("system_id", "system_name", "agency_id", "agency_name", "security_level", "criticality",
                       "operator", "contact", "critical", "ips", "hostnames")
_CSV_SYSTEM_COLUMNS: Final = {
    "system_id": "id", "system_name": "name", "security_level": "security_level", "criticality": "criticality",
    "operator": "operator", "contact": "contact", "critical": "critical",
}


def parse_inventory_csv(text: str, *, source: str = "<inventory>", digest: str = "") -> Inventory:
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in ("system_id", "ips", "hostnames") if name not in header]
    if missing:
        raise InventoryError(f"missing column(s) {', '.join(missing)}", source=source, line=1)
    unknown = [name for name in header if name not in _CSV_COLUMNS]
    if unknown:
        raise InventoryError(f"unknown column(s) {', '.join(unknown)}", source=source, line=1)
    reader.fieldnames = header
    systems: dict[str, InformationSystem] = {}
    assets: list[Asset] = []
    lines: list[int] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise InventoryError("more cells than columns", source=source, line=line)
        cells = {key: (value or "").strip() for key, value in row.items()}
        if not any(cells.values()):
            continue
        system_id = cells.get("system_id", "")
        system_cells = {key: value for key, value in cells.items() if key not in {"ips", "hostnames"} and value}
        known = systems.get(system_id)
        if known is None:
            raw: dict[str, Any] = {_CSV_SYSTEM_COLUMNS[key]: value for key, value in system_cells.items()
                                   if key in _CSV_SYSTEM_COLUMNS}
            if cells.get("agency_id") or cells.get("agency_name"):
                raw["agency"] = {"id": cells.get("agency_id", ""), "name": cells.get("agency_name", "")}
            system = _csv_field(InformationSystem.from_dict, raw, source, line)
            systems[system_id] = system
        else:
            _csv_same_system(known, system_cells, source, line)
        asset_raw = {"system": system_id, "ips": _split_cell(cells.get("ips", "")),
                     "hostnames": _split_cell(cells.get("hostnames", ""))}
        assets.append(_csv_field(Asset.from_dict, asset_raw, source, line))
        lines.append(line)
    return Inventory.build(systems.values(), assets, source=source, digest=digest, asset_lines=lines)



def _located(build: Any, item: Any, source: str, where: str) -> Any:
    if not isinstance(item, Located):
        raise InventoryError("must be a mapping", source=source, field=where)
    try:
        return build(item)
    except _FieldError as exc:
        key = exc.field.split(".", 1)[0]
        raise InventoryError(exc.reason, source=source, line=item.line_of(key), field=exc.field) from None

def _csv_field(build: Callable[[Any], Any], arg: Any, source: str, line: int, column: str | None = None) -> Any:
    try:
        return build(arg)
    except _FieldError as exc:
        column = {"id": "system_id", "name": "system_name", "agency.id": "agency_id", "agency.name": "agency_name",
                  "agency": "agency_id", "system": "system_id"}.get(exc.field, exc.field)
        raise InventoryError(exc.reason, source=source, line=line, field=column) from None
    except (ValueError, TypeError) as exc:
        raise InventoryError(str(exc), source=source, line=line, field=column) from None

def _csv_same_system(known: InformationSystem, cells: Mapping[str, str], source: str, line: int) -> None:
    expected = {
        "system_name": known.name, "agency_id": known.agency.id, "agency_name": known.agency.name,
        "security_level": str(int(known.security_level)), "criticality": known.criticality.value,
        "operator": known.operator or "", "contact": known.contact or "",
    }
    for column, value in cells.items():
        if column == "critical":
            same = _csv_field(_boolean, value, source, line, column) == known.critical
        else:
            same = column not in expected or value == expected[column]
        if not same:
            raise InventoryError(f"differs from the first row of system {known.id!r}", source=source, line=line,
                                 field=column)

def _yaml_list(doc: Located, key: str, source: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError("must be a list", source=source, line=doc.line_of(key), field=key)
    return value

def _split_cell(cell: str) -> list[str]:
    return [part for part in cell.replace(";", " ").split() if part]
