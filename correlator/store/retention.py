"""Retention: which Elasticsearch indices (and which SQLite rows) are old enough to delete. Pure functions; the job
that lists and deletes indices is a thin shell around `plan_retention`, and the clock is passed in (`now_ms`).

Index names are ``socctl-<collection>-<agency>-YYYY.MM.DD``: `collection` one of `COLLECTIONS`, `agency` the
`agency_slug` of the agency that owns the documents, and the date the UTC day of their ``@timestamp``. (The prefix
``socctl`` is a parameter everywhere, for deployments that configure another.)

Ages come from the agency's security level (cấp độ 1-5 of Decree 85/2016/NĐ-CP, `SecurityLevel`):

    level  default age
    1      30 days
    2      30 days   (1 month)
    3      90 days   (3 months)
    4      180 days  (6 months)
    5      365 days  (12 months)

Levels 2-5 are the minimums socctl is asked to keep. Level 1 has no stated minimum there; it keeps level 2's month
rather than less, so no level is kept shorter than the lowest stated requirement. Higher levels must keep data
at least as long as lower ones (a policy that does not is refused: it is almost certainly a typo). An agency the
policy does not list has `default_level`, 5 unless configured: the data of an unclassified agency is kept the
longest and never deleted early. A per-collection override (e.g. ``deadletter: 30d``) replaces the level's age
for that collection, whatever the agency.

An index holds one UTC day; it is deleted when the whole day is older than the cutoff ``now - age``, i.e. when
the day's end (the next midnight, UTC) <= the cutoff. Rows are deleted when ``@timestamp < cutoff``: the same rule
per document. Cases and allowlist entries are not in daily indices (they change in place): a case is deleted when
it was closed (``closed_ms``) before the cutoff, an allowlist entry when it expired (``expires_ms``) before it;
their agency is ``organization.id``, else their ``agency`` field. Index names that are not ours (another prefix,
an unknown collection, a suffix such as ``-000001``, an impossible date, an agency that is not a slug) are
ignored: the job never deletes what socctl did not name.

Durations are an int (days) or ``"<n>d"``, ``"<n>w"`` (weeks), ``"<n>m"`` (months of 30 days; not minutes) or
``"<n>y"`` (years of 365 days), n >= 1, the unit in either case (``"6M"`` is 180 days).

The policy file (YAML); every key is optional, levels not given keep their defaults::

    level_days: {2: 1m, 3: 3m, 4: 6m, 5: 1y}
    default_level: 5
    agencies: {so-tttt-ha-noi: 3, bo-tai-chinh: 4}
    collection_days: {deadletter: 30d}
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml

from correlator.definitions import SecurityLevel
from correlator.model import ms_to_iso
from correlator.store.documents import Collection
from correlator.store.errors import InvalidRequestError, StoreError, UnknownCollectionError

__all__ = [
    "COLLECTIONS",
    "DAY_MS",
    "DEFAULT_AGENCY",
    "DEFAULT_LEVEL_DAYS",
    "DEFAULT_PREFIX",
    "MAX_AGENCY_LENGTH",
    "IndexName",
    "Purge",
    "RetentionAction",
    "RetentionPolicy",
    "RetentionPolicyError",
    "SecurityLevel",
    "agency_slug",
    "cutoff_ms",
    "index_name",
    "load_retention_policy",
    "parse_days",
    "parse_index_name",
    "plan_retention",
]

DAY_MS: Final = 86_400_000
DEFAULT_PREFIX: Final = "socctl"
COLLECTIONS: Final = tuple(collection.value for collection in Collection)
DEFAULT_AGENCY: Final = "default"
MAX_AGENCY_LENGTH: Final = 100  # longer slugs are cut and given a hash suffix, so index names stay valid
_EPOCH: Final = date(1970, 1, 1)


DEFAULT_LEVEL_DAYS: Final[Mapping[int, int]] = MappingProxyType({1: 30, 2: 30, 3: 90, 4: 180, 5: 365})


class RetentionPolicyError(StoreError):
    """An invalid retention policy: the file (when loaded from one), the key, and why."""

    def __init__(self, reason: str, *, key: str | None = None, source: str | None = None) -> None:
        self.reason = reason
        self.key = key
        self.source = source
        super().__init__(": ".join(part for part in (source, key, reason) if part))


# -- names

_SLUG: Final = r"[a-z0-9_]+(?:-[a-z0-9_]+)*"
_NOT_SLUG: Final = re.compile(r"[^a-z0-9_]+")
_IS_SLUG: Final = re.compile(_SLUG)


def agency_slug(text: str) -> str:
    """An agency id as it appears in index names: accents dropped (đ -> d), lower case, every run of characters
    other than a-z, 0-9 and _ made one '-', no '-' at either end; "default" when nothing is left. Idempotent.
    ``"Sở TT&TT Hà Nội"`` -> ``"so-tt-tt-ha-noi"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).lower().replace("đ", "d")
    slug = _NOT_SLUG.sub("-", plain).strip("-")
    if len(slug) > MAX_AGENCY_LENGTH:
        digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
        slug = f"{slug[: MAX_AGENCY_LENGTH - 9].rstrip('-')}-{digest}"
    return slug or DEFAULT_AGENCY


def _check_collection(collection: str) -> str:
    if collection not in COLLECTIONS:
        known = ", ".join(COLLECTIONS)
        raise UnknownCollectionError(f"unknown collection {collection!r} (expected one of: {known})")
    return collection


def _utc_day(timestamp_ms: int) -> date:
    try:
        return _EPOCH + timedelta(days=timestamp_ms // DAY_MS)
    except OverflowError:
        raise InvalidRequestError(f"timestamp {timestamp_ms} ms is outside the dates an index name can hold") from None


def _day_ms(day: date) -> int:
    return (day - _EPOCH).days * DAY_MS


def _format_day(day: date) -> str:
    return f"{day.year:04d}.{day.month:02d}.{day.day:02d}"


@dataclass(frozen=True, slots=True)
class IndexName:
    """The parts of one of our index names: ``<prefix>-<collection>-<agency>-YYYY.MM.DD``."""

    collection: str
    agency: str
    day: date
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        _check_collection(self.collection)
        if not _IS_SLUG.fullmatch(self.agency):
            raise InvalidRequestError(f"agency {self.agency!r} is not a slug (expected {agency_slug(self.agency)!r})")

    @property
    def name(self) -> str:
        return f"{self.prefix}-{self.collection}-{self.agency}-{_format_day(self.day)}"

    @property
    def start_ms(self) -> int:
        """The first millisecond of the day (UTC)."""
        return _day_ms(self.day)

    @property
    def end_ms(self) -> int:
        """The end of the day, exclusive: the next midnight (UTC)."""
        return _day_ms(self.day) + DAY_MS


def index_name(collection: str, agency: str, timestamp_ms: int, *, prefix: str = DEFAULT_PREFIX) -> str:
    """The index for a document of `collection` owned by `agency` (any id: it is slugged) at `timestamp_ms`."""
    return IndexName(_check_collection(collection), agency_slug(agency), _utc_day(timestamp_ms), prefix).name


@lru_cache(maxsize=16)
def _index_pattern(prefix: str) -> re.Pattern[str]:
    collections = "|".join(COLLECTIONS)
    return re.compile(rf"{re.escape(prefix)}-({collections})-({_SLUG})-(\d{{4}})\.(\d{{2}})\.(\d{{2}})")


def parse_index_name(name: str, *, prefix: str = DEFAULT_PREFIX) -> IndexName | None:
    """The parts of one of our index names; None for any other name (including an impossible date)."""
    match = _index_pattern(prefix).fullmatch(name)
    if match is None:
        return None
    collection, agency, year, month, day = match.groups()
    try:
        return IndexName(collection, agency, date(int(year), int(month), int(day)), prefix)
    except ValueError:  # 2024.02.30, 0000.01.01
        return None


# -- the policy


_DURATION: Final = re.compile(r"(\d+)([dwmy])", re.IGNORECASE)
_UNIT_DAYS: Final = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_days(value: object, *, key: str | None = None) -> int:
    """A duration in days: an int, or "<n>d" / "<n>w" / "<n>m" (30 days) / "<n>y" (365 days); n >= 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        days = int(match.group(1)) * _UNIT_DAYS[match.group(2).lower()]
    else:
        raise RetentionPolicyError(
            f"invalid duration {value!r}: expected days as an integer, or <n>d, <n>w, <n>m (30 days) or <n>y "
            f"(365 days)",
            key=key,
        )
    if days < 1:
        raise RetentionPolicyError(f"duration must be at least 1 day, got {value!r}", key=key)
    return days


def _check_level(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in set(SecurityLevel):
        raise RetentionPolicyError(f"security level must be one of 1, 2, 3, 4, 5, got {value!r}", key=key)
    return int(value)


def _check_days(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RetentionPolicyError(f"age must be a whole number of days >= 1, got {value!r}", key=key)
    return value


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each agency's data is kept; see the module doc. Validated on construction.

    `level_days`: age in days per security level, merged over `DEFAULT_LEVEL_DAYS`; `agencies`: agency slug ->
    level; `default_level`: the level of an agency not listed; `collection_days`: collection -> age in days,
    replacing the level's age for that collection.
    """

    level_days: Mapping[int, int] = field(default_factory=lambda: DEFAULT_LEVEL_DAYS)
    agencies: Mapping[str, int] = field(default_factory=dict)
    default_level: int = SecurityLevel.LEVEL_5
    collection_days: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = {_check_level(level, f"level_days.{level}"): days for level, days in self.level_days.items()}
        levels = {**DEFAULT_LEVEL_DAYS, **given}
        for level, days in levels.items():
            _check_days(days, f"level_days.{level}")
        for level in sorted(levels)[1:]:
            if levels[level] < levels[level - 1]:
                raise RetentionPolicyError(
                    f"level {level} keeps {levels[level]} days, less than level {level - 1} ({levels[level - 1]} "
                    f"days); higher levels must keep data at least as long",
                    key=f"level_days.{level}",
                )
        agencies: dict[str, int] = {}
        for agency, level in self.agencies.items():
            if not isinstance(agency, str) or agency_slug(agency) != agency:
                expected = f"expected {agency_slug(agency)!r}" if isinstance(agency, str) else "quote it in YAML"
                raise RetentionPolicyError(f"{agency!r} is not an agency slug ({expected})", key=f"agencies.{agency}")
            agencies[agency] = _check_level(level, f"agencies.{agency}")
        collections: dict[str, int] = {}
        for collection, days in self.collection_days.items():
            if collection not in COLLECTIONS:
                raise RetentionPolicyError(
                    f"unknown collection {collection!r} (expected one of: {', '.join(COLLECTIONS)})",
                    key="collection_days",
                )
            collections[collection] = _check_days(days, f"collection_days.{collection}")
        object.__setattr__(self, "level_days", MappingProxyType(dict(sorted(levels.items()))))
        object.__setattr__(self, "agencies", MappingProxyType(dict(sorted(agencies.items()))))
        object.__setattr__(self, "default_level", _check_level(self.default_level, "default_level"))
        object.__setattr__(self, "collection_days", MappingProxyType(dict(sorted(collections.items()))))

    def level_for(self, agency: str) -> int:
        """The agency's security level (`agency` is slugged first); `default_level` if it is not listed."""
        return self.agencies.get(agency_slug(agency), self.default_level)

    def age_days(self, agency: str, collection: str) -> int:
        """How many days the agency's documents of `collection` are kept."""
        override = self.collection_days.get(_check_collection(collection))
        return override if override is not None else self.level_days[self.level_for(agency)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> RetentionPolicy:
        """A policy from its dict form (`to_dict`, or a parsed policy file); `source` names the file in errors."""
        try:
            return cls._from_dict(data)
        except RetentionPolicyError as exc:
            if source is None:
                raise
            raise RetentionPolicyError(exc.reason, key=exc.key, source=source) from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> RetentionPolicy:
        if not isinstance(data, Mapping):
            raise RetentionPolicyError(f"expected a mapping at the top level, got {type(data).__name__}")
        known = ("level_days", "default_level", "agencies", "collection_days")
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise RetentionPolicyError(f"unknown key (expected one of: {', '.join(known)})", key=unknown[0])

        def mapping(key: str) -> Mapping[Any, Any]:
            value = data.get(key) or {}
            if not isinstance(value, Mapping):
                raise RetentionPolicyError(f"expected a mapping, got {type(value).__name__}", key=key)
            return value

        level_days: dict[int, int] = {}
        for level, value in mapping("level_days").items():
            number = int(level) if isinstance(level, str) and level.isdigit() else level
            key = f"level_days.{level}"
            level_days[_check_level(number, key)] = parse_days(value, key=key)
        collection_days = {
            collection: parse_days(value, key=f"collection_days.{collection}")
            for collection, value in mapping("collection_days").items()
        }
        return cls(
            level_days=level_days,
            agencies=dict(mapping("agencies")),
            default_level=data.get("default_level", SecurityLevel.LEVEL_5),
            collection_days=collection_days,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (ages in days) that `from_dict` turns back into an equal policy."""
        return {
            "level_days": {int(level): days for level, days in self.level_days.items()},
            "default_level": int(self.default_level),
            "agencies": {agency: int(level) for agency, level in self.agencies.items()},
            "collection_days": dict(self.collection_days),
        }


def load_retention_policy(path: Path | str) -> RetentionPolicy:
    """A policy from a YAML file (see the module doc); an empty file is the default policy. Errors name the file
    and the key."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RetentionPolicyError(f"cannot read retention policy: {exc.strerror or exc}", source=str(path)) from exc
    except yaml.YAMLError as exc:
        raise RetentionPolicyError(f"invalid YAML: {exc}", source=str(path)) from exc
    return RetentionPolicy.from_dict({} if data is None else data, source=str(path))


# -- planning


def cutoff_ms(policy: RetentionPolicy, agency: str, collection: str, now_ms: int) -> int:
    """Documents of this agency and collection with ``@timestamp < cutoff`` are past retention."""
    return now_ms - policy.age_days(agency, collection) * DAY_MS


@dataclass(frozen=True, slots=True)
class RetentionAction:
    """One index to delete: its whole day ends at or before the cutoff of its agency and collection."""

    index: str
    collection: str
    agency: str
    level: int
    day: date
    age_days: int
    cutoff_ms: int

    def to_dict(self) -> dict[str, Any]:
        """For logs and dry-run output."""
        return {
            "index": self.index,
            "collection": self.collection,
            "agency": self.agency,
            "level": self.level,
            "day": self.day.isoformat(),
            "age_days": self.age_days,
            "cutoff": ms_to_iso(self.cutoff_ms),
        }


@dataclass(frozen=True, slots=True)
class Purge:
    """What the retention job did (or, in a dry run, would do) to one target: an index, or the rows of one
    agency in a table of a row-based store."""

    target: str
    collection: str
    agency: str
    level: int
    cutoff_ms: int
    documents: int
    deleted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "collection": self.collection,
            "agency": self.agency,
            "level": self.level,
            "cutoff": ms_to_iso(self.cutoff_ms),
            "documents": self.documents,
            "deleted": self.deleted,
        }


def plan_retention(
    index_names: Iterable[str], policy: RetentionPolicy, now_ms: int, *, prefix: str = DEFAULT_PREFIX
) -> list[RetentionAction]:
    """The indices among `index_names` to delete at `now_ms`, oldest day first (then by name). Names that are not
    ours are ignored; duplicates are planned once."""
    actions: list[RetentionAction] = []
    for name in set(index_names):
        parsed = parse_index_name(name, prefix=prefix)
        if parsed is None:
            continue
        cutoff = cutoff_ms(policy, parsed.agency, parsed.collection, now_ms)
        if parsed.end_ms <= cutoff:
            actions.append(
                RetentionAction(
                    index=name,
                    collection=parsed.collection,
                    agency=parsed.agency,
                    level=policy.level_for(parsed.agency),
                    day=parsed.day,
                    age_days=policy.age_days(parsed.agency, parsed.collection),
                    cutoff_ms=cutoff,
                )
            )
    actions.sort(key=lambda action: (action.day, action.index))
    return actions
