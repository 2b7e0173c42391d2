"""``cnnzoo studio``: a local web app over the run layer, for a learner who would rather look than read.

Three pages: the **zoo** (every registered model drawn as its stages, with output shapes, parameters and
MACs, and the book's Inception cost table), the **runs** (curves that grow while a run trains, the confusion
matrix, per-class accuracy, top losses, several runs overlaid) and **try it** (upload or draw a picture: the
top classes, the class-activation map, each stage's feature maps and what the model sees). Everything the pages
show comes from a JSON API (``/api/...``, described at ``/openapi.json`` and on the ``/api`` page) that calls the
library: :mod:`cnnzoo.models.inspection` and :mod:`cnnzoo.models.registry` for the zoo, :mod:`cnnzoo.run` for runs,
:func:`cnnzoo.load_model` and :mod:`cnnzoo.explain` for predictions.

Safe by default: it binds 127.0.0.1, reads run directories but never writes into them, serves only a fixed
list of run files from run directories under its root, judges uploads by their bytes (not their names) within
a size limit enforced while the request is read, and answers every bad request with a 4xx and one JSON line
``{"error": "..."}``. It needs the ``studio`` extra (FastAPI, uvicorn, python-multipart); the front end is
plain HTML, CSS and JavaScript in ``static/`` with no network access (no CDN: charts are drawn as SVG).
"""

from cnnzoo.studio.app import MAX_UPLOAD_BYTES, create_app

__all__ = ["MAX_UPLOAD_BYTES", "create_app"]
