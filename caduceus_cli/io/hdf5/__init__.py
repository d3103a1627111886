"""The HDF5 file `caduceus embed` writes and resumes (`caduceus merge` joins shards of it:
`pipelines.merge.hdf5`).

layout.py (datasets, region columns, attributes: what the file holds), files.py (opening, and
closing a written file safely), chunks.py (rows appended in whole chunks), writer.py
(`EmbeddingFile` and its `RegionWriter`s), resume.py (resume checks, progress of a partial file).
"""
