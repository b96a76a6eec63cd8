"""The model's life in a serving process: which version serves, and how the next one replaces it.

- `checks`: what a version must answer before it may serve (the scoring contract, smoke requests).
- `local_copy`: each version's files under MODEL_CACHE_DIR, keyed by what identifies the version
  (its logged model or run id, and a digest of its files), and a last-good record per alias for restarts.
- `watcher`: the thread that follows the registry alias (pub/sub, polling, backoff).
- `store`: `ModelStore` and the immutable `LoadedModel` a request reads once.
- `arms`: `ModelArms`, one store per alias of EXPERIMENT (the online A/B test), the primary's included.
- `errors`: why a version does not serve (`ModelRejected`, `AliasMissing`, `RegistryUnavailable`).
"""
