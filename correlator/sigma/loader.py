"""Load Sigma rule directories: every rule either compiles or is reported with file, line where known, and reason.

Two passes: the first reads every file and sorts out filters (the meta-filter format) and correlation rules; the
second compiles each rule file with the filters that exist. Compiled rules are cached on disk per file, keyed by
the file's content, the filters, the source configuration, the placeholder values, user pipelines and the
package versions, so a warm start only reads and unpickles, and a changed rule recompiles alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pickle
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from correlator.errors import RuleLoadError
from correlator.sigma.rule import CompiledRule
from correlator.sigma.sources import SourcesConfig

COMPILER_VERSION = "11"  # bump when the IR or the compiler's output changes
_FILTER_RE = re.compile(rb"^filter\s*:", re.MULTILINE)
_CORRELATION_RE = re.compile(rb"^correlation\s*:", re.MULTILINE)
_QUOTED_RE = re.compile(r"'([^']{2,})'")


@dataclass
class LoadStats:
    files: int = 0
    cache_hits: int = 0
    compiled: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class RuleTexts:
    """What the correlation loader needs of the rule files a load read, so it does not read them again: the
    files with a `correlation:` document, and every other file only when there are some (references to other
    rules are resolved only then). (path, text) pairs in load order; a file that is not UTF-8 is left out (the
    Sigma loader reports it)."""

    correlation: tuple[tuple[str, str], ...] = ()
    others: tuple[tuple[str, str], ...] = ()


def rule_texts(contents: Sequence[tuple[Path, bytes]]) -> RuleTexts:
    """The `RuleTexts` of files read (pure)."""
    correlation: list[tuple[str, str]] = []
    others: list[tuple[Path, bytes]] = []
    for path, data in contents:
        if _CORRELATION_RE.search(data):
            with contextlib.suppress(UnicodeDecodeError):
                correlation.append((str(path), data.decode("utf-8")))
        else:
            others.append((path, data))
    if not correlation:
        return RuleTexts()
    decoded: list[tuple[str, str]] = []
    for path, data in others:
        with contextlib.suppress(UnicodeDecodeError):
            decoded.append((str(path), data.decode("utf-8")))
    return RuleTexts(tuple(correlation), tuple(decoded))


@dataclass
class RuleSet:
    """The outcome of loading: compiled rules, failures (with file and reason), notes, and counts."""

    rules: list[CompiledRule] = field(default_factory=list)
    errors: list[RuleLoadError] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # path -> per-source limitations
    filters: int = 0
    correlations: int = 0
    stats: LoadStats = field(default_factory=LoadStats)
    texts: RuleTexts = field(default_factory=RuleTexts)

    @property
    def loaded(self) -> int:
        return len(self.rules)


def iter_rule_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yml", ".yaml") and q.is_file()))
        elif p.exists():
            out.append(p)
        else:
            out.append(p)  # reported as unreadable by the loader
    return out


def _versions() -> str:
    from correlator.sigma.prefilter import DEFAULT_COMMON

    parts = [COMPILER_VERSION, hashlib.sha256(DEFAULT_COMMON.read_bytes()).hexdigest()[:16]]
    for dist in ("pysigma", "pysigma-pipeline-windows", "pysigma-pipeline-sysmon"):
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=none")
    return ";".join(parts)


def guess_line(text: str, reason: str) -> int | None:
    """The first line mentioning a quoted token of the error message (pySigma errors carry no line)."""
    for token in _QUOTED_RE.findall(reason):
        for i, line in enumerate(text.splitlines(), start=1):
            if token in line:
                return i
    return None


class RuleCache:
    """One pickle per rule file under `directory`, named by the cache key. Corrupt entries are recompiled."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Any | None:
        if self.directory is None:
            return None
        try:
            with (self.directory / f"{key}.pickle").open("rb") as fh:
                return pickle.load(fh)  # noqa: S301 - our own cache directory
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None

    def put(self, key: str, value: Any) -> None:
        if self.directory is None:
            return
        target = self.directory / f"{key}.pickle"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(target)
        except OSError:
            tmp.unlink(missing_ok=True)


def _compile_file(text: str, path: str, ctx: Any, filters: Sequence[Any]) -> dict[str, Any]:
    """Compile every rule of one file. Returns a cacheable payload; never raises for bad rules."""
    import yaml
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError
    from sigma.filters import SigmaFilter

    from correlator.errors import CorrelatorError
    from correlator.sigma import spec_modifiers
    from correlator.sigma.compile import compile_rule

    spec_modifiers.install()

    rules: list[CompiledRule] = []
    errors: list[dict[str, Any]] = []
    notes: list[str] = []
    correlations = 0
    try:
        # Correlation rules are resolved across files by correlator.correlation; here they are only counted, so a
        # reference to a rule of another file must not fail this file's rules.
        collection = SigmaCollection.from_yaml(text, collect_errors=True, resolve_references=False)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        errors.append({"reason": f"invalid YAML: {getattr(exc, 'problem', None) or exc}", "line": line})
        return {"rules": rules, "errors": errors, "notes": notes, "correlations": 0}
    except SigmaError as exc:
        errors.append({"reason": str(exc), "line": guess_line(text, str(exc))})
        return {"rules": rules, "errors": errors, "notes": notes, "correlations": 0}
    for rule in collection.rules:
        if isinstance(rule, SigmaFilter):
            continue
        if isinstance(rule, SigmaCorrelationRule):
            correlations += 1
            continue
        if rule.errors:
            reason = "; ".join(str(e) for e in rule.errors)
            errors.append({"reason": reason, "line": guess_line(text, reason),
                           "rule_id": str(rule.id) if rule.id else None})
            continue
        try:
            for flt in filters:
                rule = flt.apply_on_rule(rule)
            compiled = compile_rule(rule, path, ctx)
        except (SigmaError, CorrelatorError) as exc:
            reason = str(exc)
            errors.append({"reason": reason, "line": guess_line(text, reason),
                           "rule_id": str(rule.id) if rule.id else None})
            continue
        except RecursionError:
            errors.append({"reason": "condition nests too deeply", "line": None})
            continue
        rules.append(compiled)
        notes.extend(compiled.notes)
    return {"rules": rules, "errors": errors, "notes": notes, "correlations": correlations}


def load_rules(
    paths: Sequence[Path],
    *,
    sources: SourcesConfig,
    placeholders: Mapping[str, Sequence[str]] | None = None,
    user_pipelines: Sequence[Path] = (),
    cache_dir: Path | None = None,
    workers: int = 0,
) -> RuleSet:
    """Load every rule under `paths` (collect-all: bad rules are reported, the rest load)."""
    started = time.perf_counter()
    result = RuleSet()
    cache = RuleCache(cache_dir)
    files = iter_rule_files(paths)
    contents: list[tuple[Path, bytes]] = []
    filter_texts: list[tuple[Path, bytes]] = []
    read: list[tuple[Path, bytes]] = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            result.errors.append(RuleLoadError(str(path), f"cannot read: {exc.strerror or exc}"))
            continue
        read.append((path, data))
        if _FILTER_RE.search(data):
            filter_texts.append((path, data))
        else:
            contents.append((path, data))
    result.stats.files = len(files)
    result.filters = len(filter_texts)
    result.texts = rule_texts(read)

    base = hashlib.sha256(_versions().encode())
    base.update(sources.signature.encode())
    for name in sorted(placeholders or {}):
        base.update(f"{name}={list((placeholders or {})[name])!r}".encode())
    for p in user_pipelines:
        base.update(p.read_bytes())
    for _, data in sorted(filter_texts):
        base.update(hashlib.sha256(data).digest())

    payloads: list[tuple[Path, bytes, str, dict[str, Any] | None]] = []
    misses: list[int] = []
    for path, data in contents:
        h = base.copy()
        h.update(str(path).encode())
        h.update(data)
        key = h.hexdigest()
        payload = cache.get(key)
        if payload is None:
            misses.append(len(payloads))
        payloads.append((path, data, key, payload))
    result.stats.cache_hits = len(payloads) - len(misses)
    # Filter errors are reported on every load; parsing filters needs pySigma, so only when there are any.
    filters = _parse_filters(filter_texts, result) if filter_texts else []
    if misses:
        from correlator.sigma.compile import make_context
        from correlator.sigma.sources import load_user_pipeline

        pipes = [load_user_pipeline(p) for p in user_pipelines]
        ctx = make_context(sources, pipes, placeholders)
        jobs = [(str(payloads[i][0]), payloads[i][1]) for i in misses]
        for i, payload in zip(misses, _compile_all(jobs, ctx, filters, workers), strict=True):
            path, data, key, _ = payloads[i]
            cache.put(key, payload)
            payloads[i] = (path, data, key, payload)
        result.stats.compiled = len(misses)

    seen_ids: dict[str, str] = {}
    for path, _, _, maybe in payloads:
        payload = maybe or {}
        for err in payload["errors"]:
            result.errors.append(RuleLoadError(str(path), err["reason"], err.get("line"), err.get("rule_id")))
        for rule in payload["rules"]:
            other = seen_ids.get(rule.meta.id)
            if other is not None:
                result.errors.append(RuleLoadError(str(path), f"duplicate rule id {rule.meta.id} (also in {other})",
                                                   rule_id=rule.meta.id))
                continue
            seen_ids[rule.meta.id] = str(path)
            result.rules.append(rule)
        if payload["notes"]:
            result.notes[str(path)] = list(payload["notes"])
        result.correlations += payload["correlations"]
    result.stats.seconds = time.perf_counter() - started
    return result


_JOB_STATE: tuple[Any, Sequence[Any]] | None = None
PARALLEL_THRESHOLD = 64  # cold compiles below this many files run in-process


def _compile_job(job: tuple[str, bytes]) -> dict[str, Any]:
    assert _JOB_STATE is not None
    ctx, filters = _JOB_STATE
    path, data = job
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"rules": [], "errors": [{"reason": f"not UTF-8 text: {exc}", "line": None}], "notes": [],
                "correlations": 0}
    return _compile_file(text, path, ctx, filters)


def _compile_all(jobs: list[tuple[str, bytes]], ctx: Any, filters: Sequence[Any], workers: int) -> list[dict[str, Any]]:
    """Compile cache misses; in forked worker processes when there are many (pySigma is CPU-bound)."""
    global _JOB_STATE  # noqa: PLW0603 - shared with forked workers
    _JOB_STATE = (ctx, filters)
    n = workers if workers > 0 else (os.cpu_count() or 1)
    try:
        if n <= 1 or len(jobs) < PARALLEL_THRESHOLD or "fork" not in multiprocessing.get_all_start_methods():
            return [_compile_job(job) for job in jobs]
        with multiprocessing.get_context("fork").Pool(n) as pool:
            return pool.map(_compile_job, jobs, chunksize=16)
    finally:
        _JOB_STATE = None


def _parse_filters(filter_texts: Sequence[tuple[Path, bytes]], result: RuleSet) -> list[Any]:
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError
    from sigma.filters import SigmaFilter

    from correlator.sigma import spec_modifiers

    spec_modifiers.install()
    out: list[Any] = []
    for path, data in filter_texts:
        try:
            collection = SigmaCollection.from_yaml(data.decode("utf-8"), collect_filters=True, collect_errors=True)
        except (SigmaError, UnicodeDecodeError, ValueError) as exc:
            result.errors.append(RuleLoadError(str(path), f"invalid filter: {exc}"))
            continue
        for flt in collection.filters:
            if isinstance(flt, SigmaFilter):
                if flt.errors:
                    result.errors.append(RuleLoadError(str(path), "; ".join(str(e) for e in flt.errors)))
                else:
                    out.append(flt)
    return out
