"""CI dashboards: the JSON reports every stage writes, rendered as one Markdown page.

Each stage leaves JSON under ``reports/`` (validation, training, gate, tests, staging checks,
promotion, monitoring). ``ci_page`` turns whatever is there into one page, verdict first: a
stage that failed is the first line, with its error and remedy (``reports/failures/``, written
by the stage itself). Then each report once: the stage's own Markdown where it wrote one beside
its JSON, else tables and Mermaid ``xychart-beta`` charts, which GitHub renders natively in job
summaries and PR comments, so nothing has to be hosted. A missing report is simply a missing
section: each job shows the stages it ran. Only ``nox -s summary`` writes the job summary.

The modules, bottom to top (imports only point down): ``tables`` (Markdown cells and tables) and
``jsonfile`` (reports on disk), which every stage uses; ``charts``; one module per section of
the page (``validation``, ``training``, ``checks``, ``monitoring``, ``generic``); ``verdict``
(the first line); ``ci_page`` (the whole page, the job's outputs).
"""
