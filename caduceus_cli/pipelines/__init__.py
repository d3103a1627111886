"""Pipelines: one job per command, and the machinery the jobs share.

A job (`EmbedJob`, `ScoreJob`, `CalibrateJob`, `TrackJob`, `IsmJob`, `MergeJob`) is a dataclass of
resolved settings whose `run(engine, ...)` does the work and owns its output (lock, temporary name,
resume, index, settings and provenance) and returns what it did: `EmbedStats`, a `Tally` of records,
a `Counter` of background variants, (bases, seconds) of a track, the `IsmTable`, the kind of shards
merged. Commands, the Python API, the benchmarks and the workflows all run the same jobs; option
parsing stays in `commands/`. Shared machinery: `tiles` (the tiled path of embed and track) and
`merge` (every kind of shard); variant windows go through the engine by `scoring.plan`.
"""
