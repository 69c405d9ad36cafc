"""The literal prefilter: extraction is sound (never narrows away a match) and the engine with the prefilter
gives exactly the naive evaluator's alerts."""

from __future__ import annotations

import os
import random

import pytest

from correlator.sigma.prefilter import (
    MAX_DISTRIBUTED,
    Prefilter,
    literal_clauses,
    make_prefilter,
    native_available,
    regex_literals,
    required_literals,
    selective,
)
from tests.correlator.sigma.conftest import proc, rule


@pytest.mark.parametrize(
    ("pattern", "flags", "expected"),
    [
        ("foo.*barbaz", "", ["barbaz"]),
        ("(?:alpha|beta)gamma", "", ["gamma"]),
        ("(alpha|betas)x", "", ["alpha", "betas"]),
        ("a+b", "", None),
        ("[a-z]+", "", None),
        ("(foo)?barbaz", "", ["barbaz"]),
        ("(evil){2,}", "", ["evil"]),
        ("InVoKe", "i", ["invoke"]),
        ("x(a|bc)y", "", None),
        # one or two rare characters still narrow (PowerShell token obfuscation: the backtick, format strings)
        ("\\w+`(?:\\w+|-|.)`[\\w+|\\s]", "", ["`"]),
        ('"(?:\\{\\d\\})+"\\s*-f', "", ["{"]),
        ("(?i)\\$\\{`?e`?n`?v", "", ["${"]),
    ],
)
def test_regex_literals(pattern, flags, expected):
    assert regex_literals(pattern, flags) == expected


@pytest.mark.parametrize(
    ("literal", "expected"),
    [("abc", True), ("ab", False), ("^^", True), ("<", True), ("0x", False), ("é", True), ("", False)],
    ids=["three", "two-common", "cmd-escape", "redirect", "hex-prefix", "non-ascii", "empty"],
)
def test_selective(literal, expected):
    assert selective(literal) is expected


def test_clauses_of_and_or_not():
    leaf_a = ("str", "A", False, (("ct", "alpha"),))
    leaf_b = ("str", "B", False, (("eq", "beta"), ("sw", "betamax")))
    short = ("str", "C", False, (("ct", "ab"),))
    assert literal_clauses(("and", (leaf_a, leaf_b))) == [frozenset({"alpha"}), frozenset({"beta", "betamax"})]
    assert literal_clauses(("or", (leaf_a, leaf_b))) == [frozenset({"alpha", "beta", "betamax"})]
    assert literal_clauses(("or", (leaf_a, short))) == []
    assert literal_clauses(("not", leaf_a)) == []
    assert required_literals(("and", (short, ("not", leaf_a)))) is None


def test_or_of_conjunctions_distributes():
    """(A1 and A2) or B = (A1 or B) and (A2 or B): every combination is a clause, so the rare one can lead."""
    image = ("str", "Image", False, (("ct", "\\windows\\"),))
    traversal = ("str", "CommandLine", False, (("ct", "\\..\\windows\\"), ("ct", "\\..\\..\\")))
    exe_up = ("str", "CommandLine", False, (("ct", ".exe\\..\\"),))
    node = ("or", (("and", (image, traversal)), exe_up))
    assert literal_clauses(node) == [
        frozenset({"\\windows\\", ".exe\\..\\"}),
        frozenset({"\\..\\windows\\", "\\..\\..\\", ".exe\\..\\"}),
    ]
    clauses = required_literals(node, ("c:\\windows\\system32\\cmd.exe",))
    assert clauses is not None
    assert clauses[0] == frozenset({"\\..\\windows\\", "\\..\\..\\", ".exe\\..\\"})


def test_distribution_is_bounded():
    leaves = [("str", f"F{i}", False, (("ct", f"literal{i}"),)) for i in range(12)]
    conjunctions = [("and", tuple(leaves[i:i + 3])) for i in range(0, 12, 3)]  # 4 alternatives of 3 clauses
    clauses = literal_clauses(("or", tuple(conjunctions)))
    assert 1 <= len(clauses) <= MAX_DISTRIBUTED
    for clause in clauses:  # each clause takes one literal from every alternative
        assert len(clause) == 4
        assert {int(lit.removeprefix("literal")) // 3 for lit in clause} == {0, 1, 2, 3}


def test_common_literals_rank_last():
    common_leaf = ("str", "Image", False, (("ew", "\\system32\\cmd.exe"),))
    rare_leaf = ("str", "CommandLine", False, (("ct", "zz"),), )
    rare_long = ("str", "CommandLine", False, (("ct", "sekurlsa"),))
    clauses = required_literals(("and", (common_leaf, rare_long, rare_leaf)), ("c:\\windows\\system32\\cmd.exe",))
    assert clauses is not None
    assert clauses[0] == frozenset({"sekurlsa"})


def test_prefilter_requires_every_clause():
    pf = Prefilter([(frozenset({"alpha"}), frozenset({"beta", "gamma"})), None, (frozenset({"delta"}),)])
    assert pf.candidates("xx alpha yy") == [1]
    assert pf.candidates("alpha gamma") == [0, 1]
    assert pf.candidates("delta") == [1, 2]
    assert pf.candidates("") == [1]


WORDS = ["alpha", "beta", "mimikatz", "whoami", "net", "user", "/add", "-enc", "c:\\temp\\", "x.ps1", "é", "  "]


def _random_rules(rng: random.Random, n: int) -> list[str]:
    modifiers = ["contains", "startswith", "endswith", "contains|all", "re", "windash|contains", "cased"]
    out = []
    for i in range(n):
        mod = rng.choice(modifiers)
        vals = rng.sample(WORDS[:10], 2)
        values = [f"{vals[0]}.*{vals[1]}"] if mod == "re" else vals
        body = f"sel:\n  CommandLine|{mod}:\n" + "".join(f"    - '{v}'\n" for v in values)
        body += f"flt:\n  Image|endswith: '{rng.choice(['.exe', 'cmd.exe', 'x'])}'\n"
        cond = rng.choice(["sel", "sel and not flt", "sel or flt", "1 of them"])
        out.append(rule(body + f"condition: {cond}", title=f"r{i}"))
    return out


def test_prefilter_equals_naive_on_random_rules_and_events(load):
    rng = random.Random(20261123)
    loaded = load(*_random_rules(rng, 60))
    assert not loaded.ruleset.errors
    for _ in range(400):
        cmd = " ".join(rng.choice([*WORDS, "other", "ALPHA", "Mimikatz"]) for _ in range(rng.randint(0, 6)))
        ev = proc(cmd, image=rng.choice(["c:\\x\\cmd.exe", "c:\\a.exe", "c:\\b"]))
        fast = sorted(a.rule.title for a in loaded.engine.match(ev))
        naive = sorted(a.rule.title for a in loaded.engine.match_naive(ev))
        assert fast == naive, cmd


@pytest.mark.skipif(not native_available(), reason="the native prefilter (correlator/native, Rust) is not built")
def test_native_prefilter_equals_python_prefilter():
    rng = random.Random(99)
    vocab = ["alpha", "beta", "gamma", "delta", "mimikatz", "\\cmd.exe", "é", "powershell", "-enc", "x.ps1"]
    clause_sets: list[tuple[frozenset[str], ...] | None] = []
    for _ in range(300):
        if rng.random() < 0.1:
            clause_sets.append(None)
            continue
        clause_sets.append(tuple(frozenset(rng.sample(vocab, rng.randint(1, 3))) for _ in range(rng.randint(1, 3))))
    native = make_prefilter(clause_sets, native=True)
    python = make_prefilter(clause_sets, native=False)
    assert list(native.always) == list(python.always)
    assert native.literals == python.literals
    for _ in range(500):
        hay = "\x1f".join(rng.sample(vocab, rng.randint(0, 6))) + rng.choice(["", " powershellx", "ALPHA"]).lower()
        assert list(native.candidates(hay)) == python.candidates(hay), hay


def test_ci_builds_the_native_prefilter():
    if os.environ.get("CI", "").lower() == "true":
        assert native_available(), "CI must build correlator/native (pip install -e . runs cargo)"
    assert isinstance(native_available(), bool)


@pytest.mark.skipif(not native_available(), reason="the native prefilter (correlator/native, Rust) is not built")
def test_native_haystack_from_fields_equals_python():
    rng = random.Random(5)
    vocab = ["alpha", "true", "4624", "é", "İstanbul", "mimikatz", "c:\\windows\\", "ß", "none"]
    clause_sets = [(frozenset({w}),) for w in vocab] + [None]
    native = make_prefilter(clause_sets, native=True)
    python = make_prefilter(clause_sets, native=False)
    values = ["ALPHA x", "MimiKatz", "C:\\Windows\\x", "İSTANBUL", "É", "STRASSE ß", None, True, False, 4624, 3.5,
              ["a", "ALPHA", None, 4624], ("x", "É"), {"nested": "NONE"}, ""]
    for _ in range(300):
        fields = {f"f{i}": rng.choice(values) for i in range(rng.randint(0, 6))}
        assert list(native.candidates_fields(fields)) == python.candidates_fields(fields), fields


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("sel:\n  Image|endswith: '\\evil.exe'\ncondition: sel", (("\\evil.exe", ("Image",)),)),
        ("sel:\n  Image|endswith: '\\evil.exe'\n  ParentImage|endswith: '\\evil.exe'\ncondition: sel",
         (("\\evil.exe", ("Image", "ParentImage")),)),
        ("sel:\n  CommandLine|re: 'mimikatz'\nkw:\n  - mimikatz\ncondition: sel or kw", (("mimikatz", None),)),
        ("sel:\n  Image|endswith: '\\evil.exe'\nf:\n  User|contains: admin\ncondition: sel and not f",
         (("\\evil.exe", ("Image",)),)),
    ],
    ids=["one-field", "two-fields", "keyword-wins", "not-gives-none"],
)
def test_literal_fields(load, body, expected):
    loaded = load(rule(body))
    assert loaded.ruleset.rules[0].generic.literal_fields == expected


def _folded_random_fields(rng: random.Random, names: list[str], vocab: list[str]) -> dict[str, object]:
    values: list[object] = [*vocab, *(w.upper() for w in vocab), None, 4624, True, ["x", "ALPHA"], "other text"]
    return {name: rng.choice(values) for name in rng.sample(names, rng.randint(0, len(names)))}


@pytest.mark.parametrize("native", [False, pytest.param(True, marks=pytest.mark.skipif(
    not native_available(), reason="the native prefilter (correlator/native, Rust) is not built"))],
    ids=["python", "native"])
def test_placed_literals_count_only_in_their_fields(native):
    clause_sets = [(frozenset({"alpha"}),), (frozenset({"delta"}),), (frozenset({"beta"}), frozenset({"gamma"}))]
    field_sets = [(("alpha", ("Image",)),), (("delta", None),), (("beta", ("A",)), ("gamma", ("B", "C")))]
    pf = make_prefilter(clause_sets, field_sets, native=native)
    assert list(pf.candidates_fields({"Image": "x\\ALPHA.exe", "User": "DELTA"})) == [0, 1]
    assert list(pf.candidates_fields({"CommandLine": "alpha delta"})) == [1]
    assert list(pf.candidates_fields({"A": "beta", "C": "gamma!"})) == [2]
    assert list(pf.candidates_fields({"A": "gamma", "C": "beta"})) == []
    assert list(pf.candidates("alpha\x1fbeta\x1fgamma")) == [0, 2]  # a bare haystack: literals count anywhere


@pytest.mark.parametrize("native", [False, pytest.param(True, marks=pytest.mark.skipif(
    not native_available(), reason="the native prefilter (correlator/native, Rust) is not built"))],
    ids=["python", "native"])
def test_a_shared_literal_counts_per_variant_in_its_own_fields(native):
    clause_sets = [(frozenset({"omega"}),), (frozenset({"omega"}),), (frozenset({"omega"}),)]
    field_sets = [(("omega", ("Image",)),), (("omega", ("User",)),), (("omega", ("Image", "User")),)]
    pf = make_prefilter(clause_sets, field_sets, native=native)
    assert list(pf.candidates_fields({"User": "OMEGA"})) == [1, 2]
    assert list(pf.candidates_fields({"Image": "omega", "Other": "omega"})) == [0, 2]
    assert list(pf.candidates_fields({"Other": "omega"})) == []
    keyword = make_prefilter([*clause_sets, (frozenset({"omega"}),)], [*field_sets, (("omega", None),)],
                             native=native)
    assert list(keyword.candidates_fields({"Other": "omega"})) == [0, 1, 2, 3]  # a keyword makes it count anywhere


@pytest.mark.skipif(not native_available(), reason="the native prefilter (correlator/native, Rust) is not built")
def test_native_placed_prefilter_equals_python():
    rng = random.Random(17)
    vocab = ["alpha", "beta", "gamma", "é", "\\cmd.exe", "powershell"]
    names = ["Image", "CommandLine", "User", "ParentImage", "Other"]
    clause_sets: list[tuple[frozenset[str], ...] | None] = []
    field_sets = []
    for _ in range(200):
        if rng.random() < 0.1:
            clause_sets.append(None)
            field_sets.append(None)
            continue
        clauses = tuple(frozenset(rng.sample(vocab, rng.randint(1, 3))) for _ in range(rng.randint(1, 3)))
        lits = sorted(frozenset().union(*clauses))
        clause_sets.append(clauses)
        field_sets.append(tuple(
            (lit, None if rng.random() < 0.2 else tuple(sorted(rng.sample(names, rng.randint(1, 2)))))
            for lit in lits
        ))
    native = make_prefilter(clause_sets, field_sets, native=True)
    python = make_prefilter(clause_sets, field_sets, native=False)
    for _ in range(500):
        fields = _folded_random_fields(rng, names, vocab)
        assert list(native.candidates_fields(fields)) == python.candidates_fields(fields), fields
