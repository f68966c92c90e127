"""What a study produced: the export's columns with their codebook text, declared once
(`columns`), the rows under them (`rows`), the export zip (`exports`), the exclusion rules
applied (`exclusions`), the outcome statistics (`analysis`, run over the export rows by
`reports`), and the reconciliation with Prolific's submissions (`reconciliation`).

Builds on `study.design` only.
"""
