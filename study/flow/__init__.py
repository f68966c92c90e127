"""The participant's side of a study: entering (`entry`), the pages in order (`sequence`:
their names and what comes next; `pages`: one class per page with its template, form and
what it submits), the writes each step makes (`services`) and the reads a page shows
(`selectors`), the views that dispatch to the pages, and simulated participants.

The server keeps each participant's page (`Participant.page`); every GET shows that page and
every POST for it advances the pointer and redirects, so Back, reload and double-clicks
lose nothing. Builds on `study.design` and `study.results` (a completion applies the
exclusion rules).
"""
