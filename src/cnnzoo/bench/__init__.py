"""Measurements: synthetic-input throughput (:mod:`~cnnzoo.bench.throughput`), cnnzoo's training raced against the
book's pipeline (:mod:`~cnnzoo.bench.race`) and the photo benchmark (:mod:`~cnnzoo.bench.photos`)."""
