"""Every alert of deploy/observability/rules.yml has a summary, a runbook_url pointing at
docs/operations.md, and that section exists there; every alert has a firing and a quiet
case in tests.yml (promtool runs them; this checks none is missing).
Series beside the firing ones in a test count as its quiet case: promtool compares the
whole list of alerts, so any of them firing fails the test."""

import pathlib
import re
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> int:
    rules = [r for g in yaml.safe_load((HERE / "rules.yml").read_text())["groups"] for r in g["rules"] if "alert" in r]
    docs = (ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", docs, re.M)}
    tests = yaml.safe_load((HERE / "tests.yml").read_text())["tests"]
    cases = {}
    for test in tests:
        for case in test.get("alert_rule_test", []):
            seen = cases.setdefault(case["alertname"], set())
            expected = case.get("exp_alerts") or []
            if expected:
                seen.add("fires")
            # Quiet: a case expecting nothing, or series beside the firing ones that
            # promtool proves stay quiet (it compares the whole list of alerts).
            if not expected or len(test["input_series"]) > len(expected):
                seen.add("quiet")
    problems = []
    problems = []
    for rule in rules:
        name = rule["alert"]
        notes = rule.get("annotations", {})
        if not notes.get("summary"):
            problems.append(f"{name}: no summary")
        url = notes.get("runbook_url", "")
        if url != f"docs/operations.md#{name.lower()}":
            problems.append(f"{name}: runbook_url {url!r}")
        if name.lower() not in anchors:
            problems.append(f"{name}: no section in docs/operations.md")
        for kind in {"fires", "quiet"} - cases.get(name, set()):
            problems.append(f"{name}: tests.yml has no case where it {kind}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(rules)} alerts, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
