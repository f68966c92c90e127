"""Writes for the engine, one module per purpose; import from the module, e.g.
`from explain_engine.services.precompute import precompute_job_create`.

- `images`: importing an image set as stimuli; an image as the classifier's input tensor.
- `classifiers`: training and registering classifiers; the per-process model cache.
- `predictions`: the classifier's stored top classes per image.
- `concept_models`: fitting an XNN concept model, getting a fitted one, explaining with it.
- `precompute`: a precompute job's steps (create, fit, plan, batches, refresh, retry).
- `explanations`: a worker's batch (claim, explain, store or fail under the claim).
- `errors`: `EngineInputError`, what every service raises for input it cannot use.

The PyTorch work is done by the pure core (`explain_engine.classifiers`, `training`,
`methods`, `render`); these modules move data between it and the database and storage.
"""
