"""The Windows ECS tables: known converters, dotted targets; channel to event.dataset. (Mappings applied to
records are tested end to end in test_windows.py.)"""

from __future__ import annotations

import pytest

from collectors import windows_ecs
from collectors.windows_ecs import dataset_for


@pytest.mark.parametrize(
    ("channel", "dataset"),
    [
        ("Security", "windows.security"),
        ("Microsoft-Windows-Sysmon/Operational", "windows.sysmon_operational"),
        ("Windows PowerShell", "windows.powershell"),
        ("Microsoft-Windows-PowerShell/Operational", "windows.powershell_operational"),
        ("Microsoft-Windows-Windows Defender/Operational", "windows.windows_defender_operational"),
        ("---", "windows.unknown"),
    ],
    ids=["security", "sysmon", "classic-powershell", "powershell-operational", "defender", "no-letters"],
)
def test_dataset_for_channel(channel: str, dataset: str) -> None:
    assert dataset_for(channel) == dataset


def test_ecs_tables_name_known_converters_and_dotted_targets() -> None:
    problems = [
        f"{scope}: {source} -> {target} ({converter})"
        for scope, entries in windows_ecs.ECS_FIELD_MAP.items()
        for source, target, converter in entries
        if converter not in windows_ecs._CONVERTERS or not source or "" in target.split(".")
    ]
    problems += [
        f"{scope}: {name}" for scope, constants in windows_ecs.ECS_EVENT_CONSTANTS.items() for name in constants
        if "" in name.split(".")
    ]
    assert not problems
