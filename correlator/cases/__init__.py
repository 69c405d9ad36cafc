"""Incident cases along the four-layer protection model: the pure domain.

    definitions  Layer (L1-L4), CaseStatus and the lifecycle table, TaskStatus, IncidentType
    model        Case, CaseAlert, Evidence, Task, SlaDeadlines, TimelineEntry (all JSON round-trippable)
    commands     the commands (data, JSON round-trippable)
    lifecycle    `apply(case, command, actor, at_ms) -> (case, entry)`, `open_case`
    grouping     alerts -> cases by key and window (`CaseGrouper`), `merge_cases`, `split_case`
    sla          SLA targets per severity, `overdue(case, now_ms)`
    routing      owning layer per severity, L4 notification drafts, L3 assessment lists
    playbooks    playbooks/*.yaml: loading (collect-all), choosing one for a case, steps -> tasks
    config       the grouping / SLA / routing configuration file

No I/O except the explicit loaders (`load_playbooks`, `load_cases_config`); the clock is always a parameter
(`at_ms`, `now_ms`, epoch milliseconds). Import the submodules directly.
"""
