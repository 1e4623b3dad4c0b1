"""Pipeline stages, one module each. `plan()` in infercc.pipeline.plan puts them in order."""
