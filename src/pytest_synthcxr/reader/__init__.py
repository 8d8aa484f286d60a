"""The stage between the report and the pytest layer, the reader study: a local web page where
radiologists label a seeded, stratified sample of cached generated images (findings, blinded) or
tell real from synthetic, the SQLite labels store and its CSV export.

Owns: reader/store.py (labels database, CSV export), reader/study.py (which images are read, and
where their pixels are), reader/app.py (the FastAPI application: token, CSRF, pages, image
route), reader/__main__.py (``python -m pytest_synthcxr.reader``). The statistics are pure
functions in stats/ppi.py and stats/agreement.py; the corrected items in checks/reader.py; the
report section in report/reader_view.py.

May import: every stage below it (spec to report; report only for its templates folder), never plugin. FastAPI and
uvicorn (the ``[reader]`` extra) are imported only by app.py and __main__.py when a study runs.
"""
