"""Batch annotation of many tweet files (``spacy-twitter-ner annotate``), in-process or on Dask.

* :mod:`.readers` finds the input files, cuts them into partitions and reads one partition;
* :mod:`.writers` writes one output partition atomically (temporary name, then ``os.replace``),
  its sidecar record and the job summary;
* :mod:`.tasks` annotates one partition with a per-process pipeline cache (no Dask import);
* :mod:`.dask_runner` runs the partitions on a Dask cluster (worker plugin, LocalCluster).

Nothing here imports Dask unless a Dask run is asked for.
"""
