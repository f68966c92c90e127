"""What a study is, decided before anyone takes part: the spec (`spec`), creating a study
from it (`creation`, or from a TOML file: `study_files`), the launch checks and the frozen
design (`launch`), the snapshot participants are served from (`frozen`), the question types
and the questionnaire, what each condition shows (`stimuli`), and the demo's set-up (`demo`).

Imports only the engine, `study.models` and `study.platforms`; every other study package
builds on this one.
"""
